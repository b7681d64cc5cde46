"""Block executors: sequential (the reference) and Block-STM (parallel), with the same outputs."""
