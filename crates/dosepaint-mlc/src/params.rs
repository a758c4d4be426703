//! Sequencer parameters, validated once ([`SequencerParams::check`]).

use dosepaint_core::{BeamGrid, BeamletLayout};
use serde::{Deserialize, Serialize};

use crate::map::check_levels;
use crate::{Error, Result};

/// The leaf-sequencing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Algorithm {
    /// Unidirectional sweep (Bortfeld et al. 1994; Spirou & Chui 1994;
    /// Boyer & Yu 1999): minimum total beam-on time among schedules whose
    /// leaves only move from -x to +x. The only algorithm that can also give a
    /// sliding-window trajectory.
    Sweep,
    /// Xia & Verhey (1998): reducing levels, one segment per iteration with
    /// a delivery unit that is a power of two.
    XiaVerhey,
    /// Engel (2005): minimum total monitor units (decomposition time), with
    /// a greedy choice of large segment weights for few segments.
    Engel,
}

/// Where the leaves of a closed leaf pair (a row with no open bixel in an
/// aperture) are put. Used by Xia-Verhey and Engel; the sweep keeps closed
/// pairs where its unidirectional motion has them (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Parking {
    /// At the right (+x) field edge; with a minimum gap `g` the pair occupies
    /// `[x_hi, x_hi + g]`, outside the field.
    #[default]
    Right,
    /// At the left (-x) field edge; with a minimum gap the pair occupies
    /// `[x_lo - g, x_lo]`.
    Left,
    /// Meeting at the bixel edge nearest the field centre (only without a
    /// minimum gap: the gap would deliver to the map).
    Centre,
}

/// How [`Algorithm::Engel`] searches each segment under interleaf
/// constraints (no interdigitation or tongue-and-groove synchronisation).
/// Both keep every guarantee: exact reproduction of the levels, every
/// aperture within the constraints, and total monitor units at most the
/// constrained sweep's. Without interleaf constraints Engel's own
/// (minimum-MU) step is used and this setting has no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConstrainedSearch {
    /// The interval search (the default before schedule windows): Engel's
    /// per-row admissible intervals chosen jointly for the largest few
    /// weights, under a work budget, falling back to the first segment of
    /// the constrained sweep. Fewer segments than `Windows` with
    /// tongue-and-groove synchronisation on smooth maps, many more on noisy
    /// maps at 10 or more levels, and slower there.
    Fast,
    /// Schedule windows: each row cuts a time slice of the residual's least
    /// constrained schedule, adjacent cuts kept compatible, for the largest
    /// weight that allows it; then the interval search is tried for a few
    /// larger weights (see `docs/leaf-sequencing.md`).
    #[default]
    Windows,
}

/// Mechanical constraints on the apertures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeafConstraints {
    /// Whether a left leaf may pass the right leaf of a neighbouring pair.
    /// `false` imposes the interleaf collision constraint (no
    /// interdigitation): `left[i] <= right[i +- 1]` in every aperture,
    /// closed pairs included.
    pub interdigitation: bool,
    /// Minimum distance between the two leaves of one pair, mm, in every
    /// aperture (closed pairs included). Must not exceed the bixel width (so
    /// that a one-bixel opening is deliverable).
    pub min_gap_mm: f64,
    /// Tongue-and-groove synchronisation: in every aperture, of two
    /// vertically adjacent bixels the one with the smaller intensity is
    /// exposed only while the other is (and both together when equal), which
    /// removes the tongue-and-groove underdose.
    pub tongue_and_groove: bool,
}

impl Default for LeafConstraints {
    /// No constraint: interdigitation allowed, no gap, no synchronisation.
    fn default() -> Self {
        Self {
            interdigitation: true,
            min_gap_mm: 0.0,
            tongue_and_groove: false,
        }
    }
}

impl LeafConstraints {
    /// Whether an interleaf constraint (no interdigitation or
    /// tongue-and-groove synchronisation) is active.
    pub fn interleaf(&self) -> bool {
        !self.interdigitation || self.tongue_and_groove
    }
}

/// Delivery technique of the output [`Sequence`](dosepaint_core::Sequence).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Delivery {
    /// Static segments, beam off while leaves move.
    #[default]
    StepAndShoot,
    /// Sliding window: leaves move while the beam is on (sweep only).
    SlidingWindow {
        /// Largest leaf travel per unit of beamlet weight, mm. For a leaf
        /// speed `v` (mm/s), a dose rate `R` (MU/s), `k` MU per unit weight and
        /// `n` fractions this is `v * k / (n * R)`.
        max_leaf_speed_mm_per_weight: f64,
    },
}

/// Everything a [`Sequencer`] needs, before validation.
///
/// ```
/// use dosepaint_mlc::{Algorithm, LeafConstraints, SequencerParams};
/// let seq = SequencerParams::new(Algorithm::Engel, 10)
///     .with_constraints(LeafConstraints { interdigitation: false, ..Default::default() })
///     .check()?;
/// assert_eq!(seq.params().n_levels, 10);
/// assert!(SequencerParams::new(Algorithm::Engel, 0).check().is_err());
/// # Ok::<(), dosepaint_mlc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequencerParams {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Number of intensity levels the map is discretised to.
    pub n_levels: u32,
    /// How values are rounded to levels.
    pub rounding: Rounding,
    /// Leaf constraints every aperture must satisfy.
    pub constraints: LeafConstraints,
    /// Where closed leaf pairs park (Xia-Verhey and Engel).
    pub parking: Parking,
    /// Step and shoot or sliding window.
    pub delivery: Delivery,
    /// Engel's search under interleaf constraints (absent in serialised
    /// parameters: the default).
    #[serde(default)]
    pub constrained_search: ConstrainedSearch,
}

use crate::map::Rounding;

impl SequencerParams {
    /// Parameters with the defaults: row-total-preserving rounding, no
    /// constraint, closed pairs parked right, step and shoot.
    pub fn new(algorithm: Algorithm, n_levels: u32) -> Self {
        Self {
            algorithm,
            n_levels,
            rounding: Rounding::default(),
            constraints: LeafConstraints::default(),
            parking: Parking::default(),
            delivery: Delivery::default(),
            constrained_search: ConstrainedSearch::default(),
        }
    }

    /// With these leaf constraints.
    pub fn with_constraints(mut self, constraints: LeafConstraints) -> Self {
        self.constraints = constraints;
        self
    }

    /// With this rounding.
    pub fn with_rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// With this parking of closed leaf pairs.
    pub fn with_parking(mut self, parking: Parking) -> Self {
        self.parking = parking;
        self
    }

    /// With this delivery technique.
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// With this search of Engel's segments under interleaf constraints.
    pub fn with_constrained_search(mut self, search: ConstrainedSearch) -> Self {
        self.constrained_search = search;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a level count outside
    /// `1..=MAX_LEVELS`, a negative or non-finite gap or leaf speed;
    /// [`Error::Unsupported`] for combinations no algorithm can honour
    /// exactly: a minimum gap together with no interdigitation (a closed pair
    /// between two open ones could not hide its gap outside the field), a
    /// minimum gap with centred parking, a sliding window with another
    /// algorithm than the sweep or with a minimum gap (the gap would deliver),
    /// and the sweep with both tongue-and-groove synchronisation and a
    /// minimum gap (a pair closed in mid-sweep could not hide its gap).
    pub fn check(self) -> Result<Sequencer> {
        check_levels(self.n_levels)?;
        let c = self.constraints;
        let g = c.min_gap_mm;
        if !(g.is_finite() && g >= 0.0) {
            return Err(Error::invalid(
                "minimum leaf gap",
                format!("{g} mm must be finite and non-negative"),
            ));
        }
        if g > 0.0 && !c.interdigitation {
            return Err(Error::Unsupported(format!(
                "a minimum leaf gap ({g} mm) together with no interdigitation: a closed \
                 leaf pair between two open ones would have to meet inside the field, where \
                 its gap delivers"
            )));
        }
        if g > 0.0 && self.parking == Parking::Centre {
            return Err(Error::Unsupported(format!(
                "centred parking with a minimum leaf gap ({g} mm): the gap would deliver to \
                 the map; park left or right"
            )));
        }
        if let Delivery::SlidingWindow {
            max_leaf_speed_mm_per_weight: v,
        } = self.delivery
        {
            if self.algorithm != Algorithm::Sweep {
                return Err(Error::Unsupported(format!(
                    "sliding-window delivery with {:?}: only the sweep gives a leaf trajectory",
                    self.algorithm
                )));
            }
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    "maximum leaf speed",
                    format!("{v} mm per unit weight must be finite and positive"),
                ));
            }
            if g > 0.0 {
                return Err(Error::Unsupported(format!(
                    "sliding window with a minimum leaf gap ({g} mm): the moving gap would \
                     deliver to bixels of zero fluence"
                )));
            }
        }
        if self.algorithm == Algorithm::Sweep && c.tongue_and_groove && g > 0.0 {
            return Err(Error::Unsupported(format!(
                "the sweep with tongue-and-groove synchronisation and a minimum leaf gap \
                 ({g} mm): a pair held closed in mid-sweep could not hide its gap"
            )));
        }
        Ok(Sequencer { params: self })
    }
}

/// Validated sequencer parameters; build it with [`SequencerParams::check`].
/// The sequencing methods are in the `sequencer` module.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SequencerParams", into = "SequencerParams")]
pub struct Sequencer {
    pub(crate) params: SequencerParams,
}

impl TryFrom<SequencerParams> for Sequencer {
    type Error = Error;
    fn try_from(p: SequencerParams) -> Result<Self> {
        p.check()
    }
}

impl From<Sequencer> for SequencerParams {
    fn from(s: Sequencer) -> Self {
        s.params
    }
}

impl Sequencer {
    /// The validated parameters.
    pub fn params(&self) -> &SequencerParams {
        &self.params
    }
}

/// Leaf geometry of one beam at the isocentre plane: its beamlet grid
/// (rows = leaf pairs along BEV y, row 0 centred at `y0_mm`; columns along
/// leaf travel, column c centred at `x0_mm + c * bixel_width_mm`) with the
/// bixel and leaf widths.
///
/// Bixel edges along x are `e_k = x0_mm + (k - 1/2) * bixel_width_mm`,
/// `k = 0..=n_cols`; the field runs from `x_lo = e_0` to `x_hi = e_n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeafGeometry {
    /// The beam's beamlet grid.
    pub grid: BeamGrid,
    /// Bixel width along leaf travel, mm.
    pub bixel_width_mm: f64,
    /// Leaf width (row height), mm.
    pub leaf_width_mm: f64,
}

impl LeafGeometry {
    /// A geometry from a grid and the two widths.
    ///
    /// # Errors
    /// Empty grid, non-positive widths or a non-finite origin.
    pub fn new(grid: BeamGrid, bixel_width_mm: f64, leaf_width_mm: f64) -> Result<Self> {
        for (what, w) in [
            ("bixel width", bixel_width_mm),
            ("leaf width", leaf_width_mm),
        ] {
            if !(w.is_finite() && w > 0.0) {
                return Err(Error::invalid(what, format!("{w} mm must be positive")));
            }
        }
        if !(grid.x0_mm.is_finite() && grid.y0_mm.is_finite()) {
            return Err(Error::invalid(
                "beam grid origin",
                format!("({}, {}) mm is not finite", grid.x0_mm, grid.y0_mm),
            ));
        }
        if grid.n_rows == 0 || grid.n_cols == 0 {
            return Err(Error::invalid(
                "beam grid",
                format!("{} rows x {} columns", grid.n_rows, grid.n_cols),
            ));
        }
        Ok(Self {
            grid,
            bixel_width_mm,
            leaf_width_mm,
        })
    }

    /// The geometry of `beam` in `layout`.
    ///
    /// # Errors
    /// A beam that does not exist, or an empty grid.
    pub fn from_layout(layout: &BeamletLayout, beam: usize) -> Result<Self> {
        let grid = *layout.beam_grids().get(beam).ok_or_else(|| {
            Error::invalid(
                "beam",
                format!("{beam} does not exist (layout has {})", layout.n_beams()),
            )
        })?;
        Self::new(grid, layout.bixel_width_mm(), layout.leaf_width_mm())
    }

    /// BEV x of bixel edge `k` (0..=n_cols), mm.
    pub fn edge_mm(&self, k: usize) -> f64 {
        self.grid.x0_mm + (k as f64 - 0.5) * self.bixel_width_mm
    }

    /// Left field edge `x_lo`, mm.
    pub fn x_lo(&self) -> f64 {
        self.edge_mm(0)
    }

    /// Right field edge `x_hi`, mm.
    pub fn x_hi(&self) -> f64 {
        self.edge_mm(self.grid.n_cols)
    }
}
