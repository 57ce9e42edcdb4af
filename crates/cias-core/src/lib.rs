//! The dlll-cias core library.
