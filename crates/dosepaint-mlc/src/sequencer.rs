//! The sequencing methods of [`Sequencer`].

use dosepaint_core::{BeamletLayout, ControlPoint, DeliveryKind, Sequence};
use serde::{Deserialize, Serialize};

use crate::engel::engel;
use crate::map::{DiscretisationError, FluenceMap, LevelMap};
use crate::params::{Algorithm, Delivery, LeafGeometry, Sequencer};
use crate::schedule::{Ctx, sliding_window, sweep_segments};
use crate::segment::Decomposition;
use crate::xia_verhey::xia_verhey;
use crate::{Error, Result};

/// Figures of one sequenced beam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamFigures {
    /// Index of the beam.
    pub beam: usize,
    /// Step and shoot: number of segments; sliding window: number of
    /// control points.
    pub n_segments: usize,
    /// Total monitor units, beamlet-weight units: the sum of the aperture
    /// weights (sliding window: the total meterset).
    pub total_mu: f64,
    /// The lower bound of the total monitor units of the discretised map,
    /// beamlet-weight units (largest row complexity times the level step).
    pub lower_bound_mu: f64,
    /// Total monitor units in levels.
    pub total_mu_levels: f64,
    /// Lower bound in levels.
    pub lower_bound_levels: u64,
    /// Fluence of one level, beamlet-weight units.
    pub level_step: f64,
    /// How far the discretised map is from the fluence map.
    pub discretisation: DiscretisationError,
}

/// One sequenced beam: its sequence, the levels it delivers, and figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamSequencing {
    /// The delivery of the beam.
    pub sequence: Sequence,
    /// The discretised map the sequence delivers exactly.
    pub levels: LevelMap,
    /// Segments, monitor units and discretisation error.
    pub figures: BeamFigures,
}

impl Sequencer {
    /// Discretises a map to the configured number of levels and rounding.
    ///
    /// # Errors
    /// Never for a valid map; kept fallible for future roundings.
    pub fn discretise(&self, map: &FluenceMap) -> Result<LevelMap> {
        LevelMap::discretise(map, self.params.n_levels, self.params.rounding)
    }

    /// Decomposes integer levels into step-and-shoot segments with the
    /// configured algorithm and constraints (for sliding-window parameters:
    /// the step-and-shoot sweep). The segments deliver `levels` exactly.
    ///
    /// ```
    /// use dosepaint_mlc::{Algorithm, LevelMap, SequencerParams};
    /// let lv = LevelMap::from_levels(2, 3, vec![1, 3, 2, 2, 2, 0], 1.0)?;
    /// let d = SequencerParams::new(Algorithm::Engel, 5).check()?.decompose(&lv);
    /// assert_eq!(d.total_mu(), lv.lower_bound());
    /// let delivered: Vec<u32> = d.delivered_levels().iter().map(|&v| v as u32).collect();
    /// assert_eq!(delivered, lv.levels());
    /// # Ok::<(), dosepaint_mlc::Error>(())
    /// ```
    pub fn decompose(&self, levels: &LevelMap) -> Decomposition {
        let ctx = Ctx::new(levels, self.params.constraints);
        let segments = if levels.is_zero() {
            Vec::new()
        } else {
            match self.params.algorithm {
                Algorithm::Sweep => {
                    let res: Vec<i64> = levels.levels().iter().map(|&l| i64::from(l)).collect();
                    sweep_segments(&ctx, &res, false)
                }
                Algorithm::XiaVerhey => xia_verhey(&ctx, levels.levels(), self.params.parking),
                Algorithm::Engel => engel(
                    &ctx,
                    levels.levels(),
                    self.params.parking,
                    self.params.constrained_search,
                ),
            }
        };
        Decomposition {
            n_rows: levels.n_rows(),
            n_cols: levels.n_cols(),
            segments,
            lower_bound: levels.lower_bound(),
        }
    }

    fn check_geometry(&self, n_rows: usize, n_cols: usize, geometry: &LeafGeometry) -> Result<()> {
        if (geometry.grid.n_rows, geometry.grid.n_cols) != (n_rows, n_cols) {
            return Err(Error::shape(
                "map vs beam grid",
                format!("{} x {}", geometry.grid.n_rows, geometry.grid.n_cols),
                format!("{n_rows} x {n_cols}"),
            ));
        }
        let g = self.params.constraints.min_gap_mm;
        if g > geometry.bixel_width_mm {
            return Err(Error::invalid(
                "minimum leaf gap",
                format!(
                    "{g} mm exceeds the bixel width {} mm: a one-bixel opening could not be \
                     delivered",
                    geometry.bixel_width_mm
                ),
            ));
        }
        Ok(())
    }

    /// The sequence of beam `beam` that delivers `levels` exactly (leaf tips
    /// on bixel edges, weights `level * step`).
    ///
    /// # Errors
    /// A map whose dimensions differ from the grid's, or a minimum gap wider
    /// than a bixel.
    pub fn sequence_levels(
        &self,
        levels: &LevelMap,
        geometry: &LeafGeometry,
        beam: usize,
    ) -> Result<Sequence> {
        self.check_geometry(levels.n_rows(), levels.n_cols(), geometry)?;
        let (m, w) = (levels.n_rows(), geometry.leaf_width_mm);
        let y0 = geometry.grid.y0_mm;
        let g = self.params.constraints.min_gap_mm;
        match self.params.delivery {
            Delivery::StepAndShoot => {
                let d = self.decompose(levels);
                let apertures = d
                    .segments
                    .iter()
                    .map(|s| s.to_aperture(geometry, g, levels.step()))
                    .collect();
                Ok(Sequence::step_and_shoot(beam, w, y0, m, apertures)?)
            }
            Delivery::SlidingWindow {
                max_leaf_speed_mm_per_weight: v,
            } => {
                let mut seq = Sequence::step_and_shoot(beam, w, y0, m, Vec::new())?;
                seq.kind = DeliveryKind::SlidingWindow;
                if levels.is_zero() {
                    return Ok(seq);
                }
                let ctx = Ctx::new(levels, self.params.constraints);
                let res: Vec<i64> = levels.levels().iter().map(|&l| i64::from(l)).collect();
                // Time (in levels) for a leaf to cross one bixel at full speed.
                let tau = geometry.bixel_width_mm / (v * levels.step());
                let tr = sliding_window(&ctx, &res, tau);
                let t_end = *tr.times.last().expect("a trajectory has control points");
                let bw = geometry.bixel_width_mm;
                let x_lo = geometry.x_lo();
                seq.trajectory = tr
                    .times
                    .iter()
                    .zip(tr.left.iter().zip(&tr.right))
                    .map(|(&t, (l, r))| ControlPoint {
                        cumulative_meterset_weight: t / t_end,
                        left_mm: l.iter().map(|&k| x_lo + k * bw).collect(),
                        right_mm: l
                            .iter()
                            .zip(r)
                            .map(|(&kl, &kr)| x_lo + kl.max(kr) * bw)
                            .collect(),
                    })
                    .collect();
                seq.total_weight = t_end * levels.step();
                Ok(seq)
            }
        }
    }

    /// Discretises and sequences the fluence map of beam `beam`.
    ///
    /// ```
    /// use dosepaint_core::BeamGrid;
    /// use dosepaint_mlc::{Algorithm, FluenceMap, LeafGeometry, SequencerParams, delivered_fluence};
    /// let grid = BeamGrid { n_rows: 2, n_cols: 3, x0_mm: -5.0, y0_mm: -2.5 };
    /// let geometry = LeafGeometry::new(grid, 5.0, 5.0)?;
    /// let map = FluenceMap::new(2, 3, vec![0.5, 1.0, 0.5, 0.0, 1.0, 1.0])?;
    /// let seq = SequencerParams::new(Algorithm::Engel, 2).check()?;
    /// let out = seq.sequence(&map, &geometry, 0)?;
    /// assert_eq!(out.figures.total_mu_levels, 2.0);
    /// let delivered = delivered_fluence(&out.sequence, &geometry, 0.0)?;
    /// for (d, f) in delivered.iter().zip(map.values()) {
    ///     assert!((d - f).abs() < 1e-12);
    /// }
    /// # Ok::<(), dosepaint_mlc::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Sequencer::sequence_levels`].
    pub fn sequence(
        &self,
        map: &FluenceMap,
        geometry: &LeafGeometry,
        beam: usize,
    ) -> Result<BeamSequencing> {
        self.check_geometry(map.n_rows(), map.n_cols(), geometry)?;
        let levels = self.discretise(map)?;
        let sequence = self.sequence_levels(&levels, geometry, beam)?;
        let step = levels.step();
        let total_mu_levels = if step > 0.0 {
            sequence.total_weight / step
        } else {
            0.0
        };
        let figures = BeamFigures {
            beam,
            n_segments: sequence.n_segments(),
            total_mu: sequence.total_weight,
            lower_bound_mu: levels.lower_bound() as f64 * step,
            total_mu_levels,
            lower_bound_levels: levels.lower_bound(),
            level_step: step,
            discretisation: levels.discretisation_error(map)?,
        };
        Ok(BeamSequencing {
            sequence,
            levels,
            figures,
        })
    }

    /// Sequences every beam of a plan: the fluence map of each beam from
    /// `weights` over `layout` ([`BeamletLayout::fluence_map`]), one
    /// [`Sequence`] per beam in beam order.
    ///
    /// # Errors
    /// A weight vector of the wrong length, or a negative / non-finite weight
    /// ([`Error::Beam`] names the beam, row and column).
    pub fn sequence_plan(&self, layout: &BeamletLayout, weights: &[f64]) -> Result<PlanSequencing> {
        if weights.len() != layout.len() {
            return Err(Error::shape("beamlet weights", layout.len(), weights.len()));
        }
        let beams = (0..layout.n_beams())
            .map(|b| {
                let map = FluenceMap::from_layout(layout, weights, b)?;
                let geometry = LeafGeometry::from_layout(layout, b)?;
                self.sequence(&map, &geometry, b).map_err(|e| e.in_beam(b))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PlanSequencing { beams })
    }
}

/// Every beam of a plan, sequenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSequencing {
    /// One entry per beam, in beam order.
    pub beams: Vec<BeamSequencing>,
}

impl PlanSequencing {
    /// The sequences, in beam order.
    pub fn sequences(&self) -> Vec<Sequence> {
        self.beams.iter().map(|b| b.sequence.clone()).collect()
    }

    /// The per-beam figures.
    pub fn figures(&self) -> Vec<BeamFigures> {
        self.beams.iter().map(|b| b.figures.clone()).collect()
    }

    /// Total monitor units over all beams (beamlet-weight units).
    pub fn total_mu(&self) -> f64 {
        self.beams.iter().map(|b| b.figures.total_mu).sum()
    }

    /// Total number of segments over all beams.
    pub fn n_segments(&self) -> usize {
        self.beams.iter().map(|b| b.figures.n_segments).sum()
    }

    /// The delivered beamlet weights (see [`crate::delivered_weights`]):
    /// multiply the dose-influence matrix by them to get the delivered dose.
    ///
    /// # Errors
    /// As [`crate::delivered_weights`].
    pub fn delivered_weights(&self, layout: &BeamletLayout, transmission: f64) -> Result<Vec<f64>> {
        crate::delivered_weights(self.beams.iter().map(|b| &b.sequence), layout, transmission)
    }
}
