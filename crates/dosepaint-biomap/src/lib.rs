//! dosepaint-biomap (under construction by its owner this session).
