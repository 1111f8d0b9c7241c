//! Runnable examples; see the `examples/` directory and the README.
