//! # dosepaint-core
//!
//! The shared vocabulary of the dosepaint workspace. Every other crate speaks
//! in these types, so that no crate of the same layer has to depend on another:
//!
//! | type | what it is |
//! |---|---|
//! | [`Grid`] | voxel grid in patient (DICOM LPS) coordinates, mm |
//! | [`Volume<T>`] | a grid plus an `ndarray::Array3<T>` of shape `(nz, ny, nx)` |
//! | [`AffineTransform`] | rigid/affine map between frames of reference |
//! | [`Structure`] | named binary mask with a role; set operations, margins |
//! | [`Prescription`] | voxel-wise target dose (total course Gy) with fractions |
//! | [`Beam`], [`BeamGeometry`] | IEC 61217 beam angles and their patient geometry |
//! | [`BeamletLayout`] | beam, leaf-pair row and column of every beamlet |
//! | [`Aperture`], [`ControlPoint`], [`Sequence`] | MLC delivery as plain data |
//! | [`DoseInfluence`], [`InfluenceBuilder`] | sparse voxel x beamlet matrix, `D w` and `D^T g` |
//!
//! ## Conventions
//! - Patient coordinates are DICOM LPS in millimetres.
//! - Arrays have shape `(nz, ny, nx)` in C order (x fastest); a voxel index
//!   `(i, j, k)` is read with [`Volume::get`], which does the `[k, j, i]`
//!   transposition in one place.
//! - Doses are total course doses in Gy with the number of fractions carried
//!   alongside; beamlet weights are per course.
//! - Errors from user or file input are [`Error`]s, never panics; a panic
//!   means a bug in the calling code (e.g. a slice of the wrong length passed
//!   by our own crates), and says so.
//!
//! ## Example
//! ```
//! use dosepaint_core::{Grid, Structure, StructureRole, Volume, Interpolation};
//!
//! // A 2 mm CT-like grid and a spherical GTV of radius 10 mm.
//! let grid = Grid::new([41, 41, 21], [2.0, 2.0, 2.0], [-40.0, -40.0, -20.0])?;
//! let gtv = Structure::new("GTV", StructureRole::Target, Volume::from_fn(grid.clone(), |v| {
//!     let p = grid.voxel_center(v);
//!     p.iter().map(|c| c * c).sum::<f64>() <= 100.0
//! }))?;
//! // A 5 mm PTV margin: close to a 15 mm sphere (4/3 pi 15^3 mm^3 = 14.1 cm^3)
//! // up to the 2 mm voxelisation.
//! let ptv = gtv.dilate([5.0; 3])?.renamed("PTV");
//! assert!((ptv.volume_cm3() - 14.1).abs() < 1.2);
//!
//! // Resample onto a coarser 4 mm dose grid.
//! let dose_grid = grid.resampled_to_spacing([4.0; 3])?;
//! let ptv_on_dose_grid = ptv.resample(&dose_grid);
//! assert!((ptv_on_dose_grid.volume_cm3() - ptv.volume_cm3()).abs() < 2.0);
//! # Ok::<(), dosepaint_core::Error>(())
//! ```
#![forbid(unsafe_code)]

mod beam;
mod error;
mod grid;
mod influence;
mod layout;
mod plan;
mod prescription;
mod structure;
mod transform;
mod volume;

pub use beam::{Beam, BeamGeometry, PatientPosition};
pub use error::{Error, Result};
pub use grid::{GRID_TOLERANCE_MM, Grid, MAX_VOXELS, PointMm};
pub use influence::{DoseInfluence, InfluenceBuilder, ROWS_PER_BLOCK};
pub use layout::{BeamGrid, Beamlet, BeamletLayout};
pub use plan::{Aperture, ControlPoint, DeliveryKind, Sequence};
pub use prescription::{Prescription, Provenance};
pub use structure::{Structure, StructureRole};
pub use transform::AffineTransform;
pub use volume::{Interpolation, Real, Stats, Volume};
