"""Sending transactions and reading views with errors translated to our exception tree."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ape import chain
from ape.api import ReceiptAPI
from ape.contracts import ContractInstance
from ape.contracts.base import ContractCall
from ape.exceptions import ApeException, ContractLogicError, ConversionError
from eth_abi.exceptions import EncodingError
from eth_utils import keccak

from offchain.errors import ContractReverted, EventNotFound, InvalidInput, TransactionFailed


def _name(contract: ContractInstance) -> str:
    return contract.contract_type.name or str(contract.address)


@contextmanager
def translated(contract: ContractInstance, function: str) -> Iterator[None]:
    """Turns ape/web3 errors of one call into ours, with the contract's revert reason."""
    try:
        yield
    except ContractLogicError as exc:
        reason = exc.revert_message
        if not reason or reason == "Transaction failed.":
            reason = None
        raise ContractReverted(_name(contract), function, reason) from None
    except (ConversionError, EncodingError, OverflowError, TypeError) as exc:
        raise InvalidInput(f"{_name(contract)}.{function}: bad argument: {exc}") from None
    except ApeException as exc:
        raise TransactionFailed(_name(contract), function, str(exc)) from None


def transact(
    contract: ContractInstance,
    function: str,
    *args: Any,
    sender: Any,
    value: int = 0,
    gas_limit: int | None = None,
    gas_margin: int = 0,
) -> ReceiptAPI:
    """Sends `contract.function(*args)` from `sender` (with `value` wei, and the gas limit the
    network's settings choose unless given); a revert raises `ContractReverted`.

    `gas_margin` is added to the estimate, for work the estimate cannot see: it runs at the
    head block, and the transaction may be mined in a later one that does more.
    """
    method = getattr(contract, function)
    with translated(contract, function):
        if gas_limit is None and gas_margin:
            gas_limit = method.estimate_gas_cost(*args, sender=sender, value=value) + gas_margin
        extra = {} if gas_limit is None else {"gas_limit": gas_limit}
        receipt = method(*args, sender=sender, value=value, **extra)
    if receipt.failed:
        raise ContractReverted(_name(contract), function, None)
    return receipt


def view(contract: ContractInstance, function: str, *args: Any) -> Any:
    """Calls a view; a revert raises `ContractReverted`.

    A function with one ABI is called without ape's check that the address holds code, which
    costs an `eth_getCode` per call on a local network (ape caches code only on live ones);
    the instances we call are our deployed contracts.
    """
    handler = getattr(contract, function)
    with translated(contract, function):
        if len(handler.abis) != 1:
            return handler(*args)
        (abi,) = handler.abis
        return ContractCall(abi, contract.address)(*handler.conversion_manager.convert_method_args(abi, args))


def event(receipt: ReceiptAPI, contract: ContractInstance, name: str) -> Any:
    """The first `name` event that `contract` emitted in `receipt`."""
    for log in receipt.decode_logs(getattr(contract, name)):
        if log.contract_address == contract.address:
            return log
    raise EventNotFound(f"{_name(contract)} emitted no {name} event in {receipt.txn_hash}")


def logs(contract: ContractInstance, name: str, first_block: int, last_block: int) -> list[Any]:
    """The `name` events `contract` emitted in blocks `first_block` … `last_block`, decoded by
    ape. A range without any (what a poller sees most rounds) costs one plain `eth_getLogs`, a
    fraction of ape's query machinery, which runs only when there is something to decode."""
    if first_block > last_block:
        return []
    abi = getattr(contract, name).abi
    found = chain.provider.web3.eth.get_logs(
        {
            "address": contract.address,
            "fromBlock": first_block,
            "toBlock": last_block,
            "topics": ["0x" + keccak(text=abi.selector).hex()],
        }
    )
    return list(getattr(contract, name).range(first_block, last_block + 1)) if found else []
