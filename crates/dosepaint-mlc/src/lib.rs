//! # dosepaint-mlc
//!
//! Leaf sequencing: turns a beam's fluence map into multileaf-collimator
//! apertures with monitor units (step and shoot) or into a sliding-window
//! leaf trajectory, and computes what a sequence actually delivers.
//!
//! | item | what it does |
//! |---|---|
//! | [`FluenceMap`], [`LevelMap`] | a beam's map, and its discretisation to integer levels ([`Rounding`]) |
//! | [`SequencerParams`] -> [`Sequencer`] | algorithm ([`Algorithm`]: sweep, Xia-Verhey, Engel), levels, [`LeafConstraints`], [`Parking`], [`Delivery`], Engel's search under interleaf constraints ([`ConstrainedSearch`]); validated once |
//! | [`Sequencer::decompose`] | integer [`Segment`]s ([`Decomposition`]) that deliver the levels exactly |
//! | [`Sequencer::sequence`], [`Sequencer::sequence_plan`] | core [`Sequence`](dosepaint_core::Sequence)s in mm with per-beam [`BeamFigures`] |
//! | [`delivered_fluence`], [`delivered_weights`] | the fluence a sequence delivers (with leaf transmission), for recomputing the dose |
//!
//! ## Conventions
//! - A map's rows are leaf pairs along BEV y (row 0 at the most negative
//!   y, centred at the grid's `y0_mm`), its columns positions along leaf
//!   travel, BEV x (column c centred at `x0_mm + c * bixel_width_mm`), as in
//!   core's [`BeamGrid`](dosepaint_core::BeamGrid). Leaf positions are BEV x
//!   in mm at the isocentre plane; the *left* leaf (X1) is on the -x side,
//!   the *right* leaf (X2) on the +x side.
//! - Leaf tips are put on bixel edges `e_k = x0 + (k - 1/2) w`; a bixel is
//!   open in an aperture when both tips are on or beyond its edges.
//! - Aperture weights are in beamlet-weight units (per course): an
//!   aperture's weight adds to every open bixel.
//! - A closed leaf pair parks at the field edge chosen by [`Parking`]
//!   (with a minimum gap `g`, in `[x_hi, x_hi + g]` or `[x_lo - g, x_lo]`,
//!   outside the field); without interdigitation it meets inside its open
//!   neighbours' openings instead. The sweep leaves closed pairs where its
//!   left-to-right motion has them. See `docs/leaf-sequencing.md`.
//!
//! ## Example
//! ```
//! use dosepaint_core::{BeamGrid, BeamletLayout};
//! use dosepaint_mlc::{Algorithm, SequencerParams};
//!
//! // One beam of 3 leaf pairs x 4 bixels of 5 mm.
//! let grid = BeamGrid { n_rows: 3, n_cols: 4, x0_mm: -7.5, y0_mm: -5.0 };
//! let layout = BeamletLayout::full(vec![grid], 5.0, 5.0)?;
//! let weights = vec![
//!     0.0, 1.0, 2.0, 1.0,
//!     1.0, 2.0, 2.0, 0.0,
//!     0.0, 0.0, 1.0, 1.0,
//! ];
//! let plan = SequencerParams::new(Algorithm::Engel, 2).check()?.sequence_plan(&layout, &weights)?;
//! let fig = &plan.beams[0].figures;
//! // Engel reaches the lower bound of the monitor units: max over rows of
//! // the sum of rises (row 0: 1 + 1 = 2, row 1: 1 + 1 = 2, row 2: 1).
//! assert_eq!(fig.total_mu, fig.lower_bound_mu);
//! assert_eq!(fig.total_mu, 2.0);
//! // The sequence delivers the map (here exactly, the map is on the levels).
//! let delivered = plan.delivered_weights(&layout, 0.0)?;
//! for (d, w) in delivered.iter().zip(&weights) {
//!     assert!((d - w).abs() < 1e-12);
//! }
//! # Ok::<(), dosepaint_mlc::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::float_cmp)]

mod constrained;
mod deliver;
mod engel;
mod error;
mod map;
mod params;
mod schedule;
mod segment;
mod sequencer;
pub mod testmaps;
mod windows;
mod xia_verhey;

pub use deliver::{delivered_fluence, delivered_weights};
pub use error::{Error, Result};
pub use map::{DiscretisationError, FluenceMap, LevelMap, MAX_LEVELS, Rounding};
pub use params::{
    Algorithm, ConstrainedSearch, Delivery, LeafConstraints, LeafGeometry, Parking, Sequencer,
    SequencerParams,
};
pub use segment::{Decomposition, Segment};
pub use sequencer::{BeamFigures, BeamSequencing, PlanSequencing};
