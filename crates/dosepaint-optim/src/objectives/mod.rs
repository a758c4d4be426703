//! Built-in objectives.

pub(crate) mod biological;
pub(crate) mod fluence;
pub(crate) mod physical;
