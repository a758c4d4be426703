//! dosepaint-optim (under construction by its owner this session).
