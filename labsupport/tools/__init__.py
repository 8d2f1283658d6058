"""Building and measuring the models: data, training, evaluation, metrics, benchmarks, speed-ups.

These are the instructors' and maintainers' tools (`labsupport train`, `evaluate`, `bench`); the
notebooks borrow some (MNIST loading, metrics, chunked generation, the timing helper).
"""
