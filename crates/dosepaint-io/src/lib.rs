//! dosepaint-io (under construction by its owner this session).
