//! dosepaint-dose (under construction by its owner this session).
