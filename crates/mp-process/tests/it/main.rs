//! Integration tests of mp-process: real children under every start method.

mod lifecycle;
