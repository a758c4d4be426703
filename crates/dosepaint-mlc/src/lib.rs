//! dosepaint-mlc (under construction by its owner this session).
