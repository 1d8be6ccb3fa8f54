//! Unit tests of mp-process, run across real processes.
