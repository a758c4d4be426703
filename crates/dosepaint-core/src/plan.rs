//! Plain-data delivery description: MLC apertures, control points and
//! sequences, shared by the sequencer, the dose engine and the RTPLAN writer.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One MLC aperture (a step-and-shoot segment): for each leaf pair the
/// positions of the left (X1, negative side) and right (X2) leaf tips along
/// BEV x, in mm at the isocentre plane, and the meterset weight delivered
/// through it, in the units of the beamlet weights (per course).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aperture {
    /// Left leaf tip per leaf pair, mm.
    pub left_mm: Vec<f64>,
    /// Right leaf tip per leaf pair, mm (`>= left_mm`; equal means closed).
    pub right_mm: Vec<f64>,
    /// Weight (beamlet-weight units, per course).
    pub weight: f64,
}

impl Aperture {
    /// Checks that both banks have `n_leaf_pairs` finite positions, no leaf
    /// crosses its partner, and the weight is finite and non-negative.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] or [`Error::InvalidParameter`] saying which
    /// leaf pair is wrong.
    pub fn validate(&self, n_leaf_pairs: usize) -> Result<()> {
        if self.left_mm.len() != n_leaf_pairs || self.right_mm.len() != n_leaf_pairs {
            return Err(Error::shape(
                "aperture leaf banks",
                n_leaf_pairs,
                format!("{} left, {} right", self.left_mm.len(), self.right_mm.len()),
            ));
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(Error::invalid(
                "aperture weight",
                format!("{}", self.weight),
            ));
        }
        for (r, (l, rt)) in self.left_mm.iter().zip(&self.right_mm).enumerate() {
            if !(l.is_finite() && rt.is_finite()) || l > rt {
                return Err(Error::invalid(
                    "leaf positions",
                    format!("leaf pair {r}: left {l} mm, right {rt} mm"),
                ));
            }
        }
        Ok(())
    }
}

/// How a sequence is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// Beam off while leaves move between segments.
    StepAndShoot,
    /// Leaves move while the beam is on (sliding window).
    SlidingWindow,
}

/// One control point of a beam: leaf positions at a cumulative meterset
/// fraction (0 at the first control point, 1 at the last), as in DICOM RTPLAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlPoint {
    /// Cumulative meterset weight in `[0, 1]`.
    pub cumulative_meterset_weight: f64,
    /// Left leaf tips, mm.
    pub left_mm: Vec<f64>,
    /// Right leaf tips, mm.
    pub right_mm: Vec<f64>,
}

/// The delivery of one beam: its leaf geometry and either its apertures
/// (step and shoot) or its leaf trajectory (sliding window).
///
/// Leaf pair `r` covers BEV y in `[y0 + (r - 1/2) w, y0 + (r + 1/2) w]` with
/// `w = leaf_width_mm` and `y0 = first_leaf_center_mm`, the rows of the
/// beam's [`BeamGrid`](crate::BeamGrid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Index of the beam in the plan.
    pub beam: usize,
    /// Leaf width at the isocentre plane, mm.
    pub leaf_width_mm: f64,
    /// BEV y of the centre of leaf pair 0, mm.
    pub first_leaf_center_mm: f64,
    /// Delivery technique.
    pub kind: DeliveryKind,
    /// Step-and-shoot segments (for sliding window: empty).
    pub apertures: Vec<Aperture>,
    /// Sliding-window trajectory (for step and shoot: derived, see
    /// [`Sequence::control_points`]).
    pub trajectory: Vec<ControlPoint>,
    /// Total weight (beamlet-weight units, per course) of the beam.
    pub total_weight: f64,
}

impl Sequence {
    /// A step-and-shoot sequence from its apertures.
    ///
    /// # Errors
    /// If an aperture is invalid or the leaf geometry is not finite/positive.
    pub fn step_and_shoot(
        beam: usize,
        leaf_width_mm: f64,
        first_leaf_center_mm: f64,
        n_leaf_pairs: usize,
        apertures: Vec<Aperture>,
    ) -> Result<Self> {
        if !(leaf_width_mm.is_finite() && leaf_width_mm > 0.0 && first_leaf_center_mm.is_finite()) {
            return Err(Error::invalid(
                "leaf geometry",
                format!("width {leaf_width_mm} mm, first centre {first_leaf_center_mm} mm"),
            ));
        }
        for (s, a) in apertures.iter().enumerate() {
            a.validate(n_leaf_pairs)
                .map_err(|e| Error::invalid(format!("segment {s}"), e.to_string()))?;
        }
        let total_weight = apertures.iter().map(|a| a.weight).sum();
        Ok(Self {
            beam,
            leaf_width_mm,
            first_leaf_center_mm,
            kind: DeliveryKind::StepAndShoot,
            apertures,
            trajectory: Vec::new(),
            total_weight,
        })
    }

    /// Number of leaf pairs.
    pub fn n_leaf_pairs(&self) -> usize {
        self.apertures
            .first()
            .map(|a| a.left_mm.len())
            .or_else(|| self.trajectory.first().map(|c| c.left_mm.len()))
            .unwrap_or(0)
    }

    /// Number of segments (step and shoot) or control points (sliding window).
    pub fn n_segments(&self) -> usize {
        match self.kind {
            DeliveryKind::StepAndShoot => self.apertures.len(),
            DeliveryKind::SlidingWindow => self.trajectory.len(),
        }
    }

    /// Control points as an RTPLAN stores them. Step and shoot: two control
    /// points per segment with the same leaves, the meterset rising across the
    /// segment. Sliding window: the trajectory itself.
    pub fn control_points(&self) -> Vec<ControlPoint> {
        match self.kind {
            DeliveryKind::SlidingWindow => self.trajectory.clone(),
            DeliveryKind::StepAndShoot => {
                let total = self.total_weight;
                let mut cumulative = 0.0;
                let mut cps = Vec::with_capacity(2 * self.apertures.len());
                for a in &self.apertures {
                    let frac = |w: f64| if total > 0.0 { w / total } else { 0.0 };
                    cps.push(ControlPoint {
                        cumulative_meterset_weight: frac(cumulative),
                        left_mm: a.left_mm.clone(),
                        right_mm: a.right_mm.clone(),
                    });
                    cumulative += a.weight;
                    cps.push(ControlPoint {
                        cumulative_meterset_weight: frac(cumulative),
                        left_mm: a.left_mm.clone(),
                        right_mm: a.right_mm.clone(),
                    });
                }
                if let Some(last) = cps.last_mut() {
                    last.cumulative_meterset_weight = 1.0;
                }
                cps
            }
        }
    }
}
