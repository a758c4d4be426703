//! dosepaint-radiobio (under construction by its owner this session).
