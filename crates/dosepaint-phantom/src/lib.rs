//! dosepaint-phantom (under construction by its owner this session).
