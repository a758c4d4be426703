//! The beamlet grid of each beam: square bixels in the isocentre plane that
//! cover the beam's-eye-view projection of the target(s) plus a margin.

use std::collections::BTreeSet;

use dosepaint_core::{Beam, BeamGrid, Beamlet, BeamletLayout, PatientPosition, Structure};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How to lay out beamlets.
///
/// Bixel edges sit on multiples of the bixel width (columns) and of the leaf
/// width (rows) in the isocentre plane, so the central axis is a bixel
/// boundary and a 10 x 10 cm^2 field is tiled exactly by 2.5, 5 or 10 mm
/// bixels; rows are leaf pairs, so the sequencer can use the same grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamletGridSpec {
    /// Bixel width along leaf travel (BEV x), mm at the isocentre (default 5).
    pub bixel_width_mm: f64,
    /// Row height across leaf pairs (BEV y), mm at the isocentre; the leaf
    /// width (default 5).
    pub leaf_width_mm: f64,
    /// Margin added around the target projection, mm at the isocentre
    /// (default 5).
    pub margin_mm: f64,
}

impl Default for BeamletGridSpec {
    fn default() -> Self {
        Self {
            bixel_width_mm: 5.0,
            leaf_width_mm: 5.0,
            margin_mm: 5.0,
        }
    }
}

impl BeamletGridSpec {
    /// Square bixels of `width_mm` (bixel width = leaf width) with the default margin.
    pub fn square(width_mm: f64) -> Self {
        Self {
            bixel_width_mm: width_mm,
            leaf_width_mm: width_mm,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        for (what, v) in [
            ("bixel width", self.bixel_width_mm),
            ("leaf width", self.leaf_width_mm),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    what,
                    format!("{v} mm must be positive and finite"),
                ));
            }
        }
        if !(self.margin_mm.is_finite() && self.margin_mm >= 0.0) {
            return Err(Error::invalid(
                "beamlet margin",
                format!("{} mm must be non-negative and finite", self.margin_mm),
            ));
        }
        Ok(())
    }
}

/// The beamlet layout of `beams`: for each beam, every bixel whose square
/// (grown by the margin) overlaps the projection through the source of a
/// target voxel (each voxel taken as a square of its largest spacing).
///
/// ```
/// use dosepaint_core::{Beam, Grid, PatientPosition, Structure, StructureRole, Volume};
/// use dosepaint_dose::{BeamletGridSpec, beamlet_layout};
/// let grid = Grid::new([21, 21, 21], [2.0; 3], [-20.0; 3])?;
/// // A 2 x 2 x 2 cm cube at the isocentre.
/// let ptv = Structure::new("PTV", StructureRole::Target, Volume::from_fn(grid, |[i, j, k]| {
///     (5..=15).contains(&i) && (5..=15).contains(&j) && (5..=15).contains(&k)
/// }))?;
/// let beams = vec![Beam::new("G0", 0.0, 0.0, 0.0, [0.0; 3])?];
/// let spec = BeamletGridSpec { margin_mm: 0.0, ..BeamletGridSpec::square(5.0) };
/// let layout = beamlet_layout(&beams, PatientPosition::HFS, &[&ptv], &spec)?;
/// // The cube's projection spans about -11.5..11.5 mm: 6 x 6 bixels of 5 mm.
/// assert_eq!(layout.len(), 36);
/// # Ok::<(), dosepaint_dose::Error>(())
/// ```
///
/// # Errors
/// Bad spec values, no beam, no target or only empty targets, a target voxel
/// at or behind a beam's source, or a decubitus position.
pub fn beamlet_layout(
    beams: &[Beam],
    position: PatientPosition,
    targets: &[&Structure],
    spec: &BeamletGridSpec,
) -> Result<BeamletLayout> {
    spec.validate()?;
    if beams.is_empty() {
        return Err(Error::Empty {
            what: "beam list".into(),
            reason: "a beamlet layout needs at least one beam".into(),
        });
    }
    if targets.is_empty() || targets.iter().all(|t| t.is_empty()) {
        return Err(Error::Empty {
            what: if targets.is_empty() {
                "target list".to_string()
            } else {
                format!(
                    "target(s) {}",
                    targets
                        .iter()
                        .map(|t| format!("\"{}\"", t.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            reason: "the beamlet grid covers the targets' projection, and there is none".into(),
        });
    }
    let (w, h) = (spec.bixel_width_mm, spec.leaf_width_mm);
    let mut grids = Vec::with_capacity(beams.len());
    let mut beamlets = Vec::new();
    for (b, beam) in beams.iter().enumerate() {
        let g = beam.geometry(position)?;
        let mut cells: BTreeSet<(i64, i64)> = BTreeSet::new();
        for t in targets {
            let grid = t.grid();
            let half = 0.5 * grid.spacing_mm().iter().copied().fold(0.0, f64::max);
            for n in t.voxel_indices() {
                let p = grid.voxel_center(grid.voxel_index(n as usize));
                let Some(([x, y], along)) = g.project(p) else {
                    return Err(Error::invalid(
                        "beam geometry",
                        format!(
                            "beam \"{}\": target \"{}\" voxel at {p:?} mm is at or behind the source",
                            beam.name(),
                            t.name()
                        ),
                    ));
                };
                let ext = half * g.sad_mm / along + spec.margin_mm;
                // Cells [n w, (n + 1) w] overlapping [x - ext, x + ext] (open
                // overlap: touching an edge does not count).
                let c0 = ((x - ext) / w).floor() as i64;
                let c1 = ((x + ext) / w).ceil() as i64 - 1;
                let r0 = ((y - ext) / h).floor() as i64;
                let r1 = ((y + ext) / h).ceil() as i64 - 1;
                for r in r0..=r1 {
                    for c in c0..=c1 {
                        cells.insert((r, c));
                    }
                }
            }
        }
        // Cells are ordered by (row, column): the rows bound from the ends.
        let (Some(&(rmin, _)), Some(&(rmax, _))) = (cells.first(), cells.last()) else {
            unreachable!("a non-empty target covers at least one cell");
        };
        let (cmin, cmax) = cells
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &(_, c)| {
                (lo.min(c), hi.max(c))
            });
        grids.push(BeamGrid {
            n_rows: (rmax - rmin + 1) as usize,
            n_cols: (cmax - cmin + 1) as usize,
            x0_mm: (cmin as f64 + 0.5) * w,
            y0_mm: (rmin as f64 + 0.5) * h,
        });
        beamlets.extend(cells.iter().map(|&(r, c)| Beamlet {
            beam: b as u32,
            row: (r - rmin) as u32,
            col: (c - cmin) as u32,
        }));
    }
    Ok(BeamletLayout::new(grids, beamlets, w, h)?)
}

/// A layout with one beam whose bixels tile the rectangle
/// `[-width_x/2, width_x/2] x [-width_y/2, width_y/2]` (isocentre plane):
/// an open field made of beamlets, e.g. for calibration and checks.
///
/// # Errors
/// If a width is not a positive multiple of the bixel (or leaf) width.
pub fn open_field_layout(
    width_x_mm: f64,
    width_y_mm: f64,
    bixel_width_mm: f64,
    leaf_width_mm: f64,
) -> Result<BeamletLayout> {
    let count = |what: &str, total: f64, step: f64| -> Result<usize> {
        if !(step.is_finite() && step > 0.0) {
            return Err(Error::invalid(what, format!("{step} mm must be positive")));
        }
        let n = (total / step).round();
        if !(total.is_finite() && n >= 1.0 && (n * step - total).abs() < 1e-6 * total.max(1.0)) {
            return Err(Error::invalid(
                "open field",
                format!("{total} mm is not a positive multiple of the {what} {step} mm"),
            ));
        }
        Ok(n as usize)
    };
    let nc = count("bixel width", width_x_mm, bixel_width_mm)?;
    let nr = count("leaf width", width_y_mm, leaf_width_mm)?;
    Ok(BeamletLayout::full(
        vec![BeamGrid {
            n_rows: nr,
            n_cols: nc,
            x0_mm: -0.5 * width_x_mm + 0.5 * bixel_width_mm,
            y0_mm: -0.5 * width_y_mm + 0.5 * leaf_width_mm,
        }],
        bixel_width_mm,
        leaf_width_mm,
    )?)
}
