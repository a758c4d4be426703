//! dosepaint-eval (under construction by its owner this session).
