//! Shared fixtures for the dosepaint benchmarks.
