//! The finite-size pencil-beam engine.

use std::ops::Range;

use dosepaint_core::{Beam, BeamGeometry, BeamletLayout, Grid, PointMm};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::{BeamletColumn, ColumnSink, DoseEngine, FluenceMap, PreparedBeam};
use crate::erf::ErfTable;
use crate::siddon::traverse;
use crate::{DoseRows, Error, Machine, N_COMPONENTS, PatientModel, Result};

/// Options of the [`PencilBeamEngine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PencilBeamOptions {
    /// A beamlet's column holds only voxels whose projection lies within
    /// this distance (mm, isocentre plane) of the beamlet's central ray.
    /// Default 50 mm; `f64::INFINITY` (JSON: omit it or use a huge value)
    /// keeps every voxel.
    pub lateral_cutoff_mm: f64,
    /// Entries below this fraction of the column's maximum are dropped.
    /// Default 1e-4; 0 keeps every entry.
    pub relative_threshold: f64,
    /// Spacing (mm, isocentre plane) of the rays traced through the CT for
    /// radiological depths; `None`: the smallest CT spacing.
    pub ray_spacing_mm: Option<f64>,
    /// Relative electron density at which a ray enters the patient: the
    /// radiological depth counts from there (default 0.1, i.e. about
    /// -900 HU: air in front of the body and the couch-free gap do not count).
    pub surface_density: f64,
}

impl Default for PencilBeamOptions {
    fn default() -> Self {
        Self {
            lateral_cutoff_mm: 50.0,
            relative_threshold: 1e-4,
            ray_spacing_mm: None,
            surface_density: 0.1,
        }
    }
}

impl PencilBeamOptions {
    /// No lateral cut-off and no threshold: the full model, for reference
    /// calculations (slow and large).
    pub fn exact() -> Self {
        Self {
            lateral_cutoff_mm: f64::INFINITY,
            relative_threshold: 0.0,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.lateral_cutoff_mm.is_nan() || self.lateral_cutoff_mm <= 0.0 {
            return Err(Error::invalid(
                "lateral cut-off",
                format!(
                    "{} mm must be positive (or infinite)",
                    self.lateral_cutoff_mm
                ),
            ));
        }
        if !(self.relative_threshold.is_finite() && (0.0..1.0).contains(&self.relative_threshold)) {
            return Err(Error::invalid(
                "relative threshold",
                format!("{} must be in [0, 1)", self.relative_threshold),
            ));
        }
        if let Some(s) = self.ray_spacing_mm
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::invalid(
                "ray spacing",
                format!("{s} mm must be positive"),
            ));
        }
        if !(self.surface_density.is_finite() && self.surface_density > 0.0) {
            return Err(Error::invalid(
                "surface density",
                format!("{} must be positive", self.surface_density),
            ));
        }
        Ok(())
    }
}

/// The photon finite-size pencil-beam engine (see `docs/dose-engine.md`).
///
/// ```
/// use dosepaint_core::{Beam, Grid, PatientPosition, Volume};
/// use dosepaint_dose::{
///     DoseEngine, DoseRows, Machine, PatientModel, PencilBeamEngine, PencilBeamOptions,
///     open_field_layout,
/// };
/// // A 20 cm water cube, 4 mm voxels, isocentre 50 mm deep (SSD 950 mm).
/// let grid = Grid::new([50, 50, 50], [4.0; 3], [-98.0, -48.0, -98.0])?;
/// let patient = PatientModel::from_density(Volume::filled(grid.clone(), 1.0), PatientPosition::HFS)?;
/// let engine: Box<dyn DoseEngine + Send + Sync> =
///     Box::new(PencilBeamEngine::new(Machine::generic_6mv(), PencilBeamOptions::default())?);
/// let beams = vec![Beam::new("AP", 0.0, 0.0, 0.0, [0.0, 0.0, 0.0])?];
/// let layout = open_field_layout(40.0, 40.0, 5.0, 5.0)?;
/// let rows = DoseRows::all(grid)?;
/// let d = engine.influence(&patient, &rows, &beams, &layout)?;
/// assert_eq!(d.n_beamlets(), 64);
/// let dose = d.dose(&vec![1.0; 64])?;
/// assert!(dose.iter().cloned().fold(0.0, f64::max) > 0.5);
/// # Ok::<(), dosepaint_dose::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PencilBeamEngine {
    machine: Machine,
    options: PencilBeamOptions,
}

impl PencilBeamEngine {
    /// An engine for `machine` with validated `options`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an option out of range.
    pub fn new(machine: Machine, options: PencilBeamOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self { machine, options })
    }

    /// The beam model.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The options.
    pub fn options(&self) -> &PencilBeamOptions {
        &self.options
    }

    /// Prepares a beam, returning the concrete type (with its diagnostics).
    ///
    /// # Errors
    /// A beam index outside the layout, a beam SAD that differs from the
    /// machine's, a decubitus position, an isocentre outside the CT, or a
    /// beam whose field (plus cut-off) holds no row inside the patient.
    pub fn prepare(
        &self,
        patient: &PatientModel,
        rows: &DoseRows,
        layout: &BeamletLayout,
        beam_index: usize,
        beam: &Beam,
    ) -> Result<PencilBeam> {
        prepare(self, patient, rows, layout, beam_index, beam)
    }
}

impl DoseEngine for PencilBeamEngine {
    fn name(&self) -> String {
        format!("pencil beam ({})", self.machine.params().name)
    }

    fn prepare_beam(
        &self,
        patient: &PatientModel,
        rows: &DoseRows,
        layout: &BeamletLayout,
        beam_index: usize,
        beam: &Beam,
    ) -> Result<Box<dyn PreparedBeam>> {
        Ok(Box::new(
            self.prepare(patient, rows, layout, beam_index, beam)?,
        ))
    }
}

/// A beam prepared by the [`PencilBeamEngine`]: per voxel of interest its
/// beam's-eye-view position and kernel (from the traced radiological depth),
/// in ascending row order, so that each leaf pair's beamlets are computed in
/// one pass that shares the erf values at the bixel edges.
///
/// [`PreparedBeam::fluence_dose`] evaluates the same kernel for any fluence
/// map, honouring the lateral cut-off per map pixel, in the voxels prepared
/// for the beam: those within the beamlet grid's extent grown by the cut-off
/// (every voxel for an engine without cut-off).
#[derive(Debug, Clone)]
pub struct PencilBeam {
    beam_index: usize,
    range: Range<usize>,
    /// (row, col) of each beamlet of the beam, in layout order.
    rc: Vec<(u32, u32)>,
    /// Centre of grid column 0 / row 0 (mm) and bixel / leaf widths.
    gx0: f32,
    gy0: f32,
    w: f32,
    h: f32,
    cutoff: f32,
    threshold: f32,
    n_rows: usize,
    ssd_mm: Option<f64>,
    // Voxels in ascending row order.
    x: Vec<f32>,
    y: Vec<f32>,
    row: Vec<u32>,
    amp: Vec<[f32; N_COMPONENTS]>,
    inv: Vec<[f32; N_COMPONENTS]>,
    depth: Vec<f32>,
}

impl PencilBeam {
    /// Number of dose rows this beam reaches (inside the field plus cut-off
    /// and inside the patient).
    pub fn n_voxels(&self) -> usize {
        self.row.len()
    }

    /// Source-to-surface distance along the central axis (mm), if the
    /// central axis enters the patient.
    pub fn central_axis_ssd_mm(&self) -> Option<f64> {
        self.ssd_mm
    }

    /// The radiological depth (mm) the engine uses for each reached row,
    /// as `(row, depth)` pairs, rows ascending.
    pub fn radiological_depths(&self) -> Vec<(u32, f32)> {
        self.row
            .iter()
            .copied()
            .zip(self.depth.iter().copied())
            .collect()
    }

    /// Splits `beamlets` (weight indices of this beam) into consecutive runs
    /// that each belong to one leaf pair, in order.
    fn leaf_pair_runs(&self, beamlets: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
        let leaf_row = move |j: usize| self.rc[j - self.range.start].0;
        let mut start = beamlets.start;
        std::iter::from_fn(move || {
            (start < beamlets.end).then(|| {
                let mut end = start + 1;
                while end < beamlets.end && leaf_row(end) == leaf_row(start) {
                    end += 1;
                }
                let run = start..end;
                start = end;
                run
            })
        })
    }

    /// Computes the columns of `batch` (beamlets of one leaf pair, columns
    /// ascending) in one pass over the voxels, into `scratch.cols[..n]`
    /// (rows ascending, thresholded). The scratch buffers keep their
    /// allocations between calls.
    fn compute_batch(&self, batch: Range<usize>, scratch: &mut BatchScratch) {
        let n = batch.len();
        let BatchScratch {
            slot,
            cols,
            vmax,
            edges,
        } = scratch;
        if cols.len() < n {
            cols.resize_with(n, BeamletColumn::default);
        }
        let cols = &mut cols[..n];
        for col in cols.iter_mut() {
            col.clear();
        }
        if n == 0 {
            return;
        }
        let first = batch.start - self.range.start;
        let leaf_row = self.rc[first].0;
        debug_assert!(self.rc[first..first + n].iter().all(|p| p.0 == leaf_row));
        let cmin = self.rc[first].1;
        let cmax = self.rc[first + n - 1].1;
        let span = (cmax - cmin + 1) as usize;
        slot.clear();
        slot.resize(span, u32::MAX);
        for i in 0..n {
            slot[(self.rc[first + i].1 - cmin) as usize] = i as u32;
        }
        vmax.clear();
        vmax.resize(n, 0.0);
        edges.clear();
        edges.resize(span + 1, [0.0; N_COMPONENTS]);
        let erf = ErfTable::get();
        let cy = self.gy0 + leaf_row as f32 * self.h;
        let (w, hy) = (self.w, 0.5 * self.h);
        // BEV x of the left edge of column q is `xe0 + q w`.
        let xe0 = self.gx0 - 0.5 * w;
        let c = self.cutoff;
        let finite = c.is_finite();
        let (fmin, fmax) = (cmin as f32, cmax as f32);
        for e in 0..self.row.len() {
            let dy = self.y[e] - cy;
            if dy.abs() > c {
                continue;
            }
            let x = self.x[e];
            let (lo, hi) = if finite {
                let hc = (c * c - dy * dy).max(0.0).sqrt();
                (
                    ((x - hc - self.gx0) / w).ceil().max(fmin),
                    ((x + hc - self.gx0) / w).floor().min(fmax),
                )
            } else {
                (fmin, fmax)
            };
            if lo > hi {
                continue;
            }
            let (lo, hi) = (lo as usize, hi as usize);
            let amp = self.amp[e];
            let inv = self.inv[e];
            let mut fy = [0.0f32; N_COMPONENTS];
            for k in 0..N_COMPONENTS {
                if amp[k] != 0.0 {
                    fy[k] = amp[k] * (erf.erf((hy - dy) * inv[k]) + erf.erf((hy + dy) * inv[k]));
                }
            }
            let base = lo - cmin as usize;
            let count = hi - lo + 1;
            for q in 0..=count {
                let xe = xe0 + (lo + q) as f32 * w - x;
                let edge = &mut edges[q];
                for k in 0..N_COMPONENTS {
                    edge[k] = if fy[k] == 0.0 {
                        0.0
                    } else {
                        erf.erf(xe * inv[k])
                    };
                }
            }
            let r = self.row[e];
            for q in 0..count {
                let s = slot[base + q];
                if s == u32::MAX {
                    continue;
                }
                let (a, b) = (&edges[q], &edges[q + 1]);
                let mut v = 0.0f32;
                for k in 0..N_COMPONENTS {
                    v += fy[k] * (b[k] - a[k]);
                }
                let v = 0.25 * v;
                if v > 0.0 {
                    let s = s as usize;
                    cols[s].rows.push(r);
                    cols[s].values.push(v);
                    vmax[s] = vmax[s].max(v);
                }
            }
        }
        for (col, &m) in cols.iter_mut().zip(vmax.iter()) {
            let cut = self.threshold * m;
            if cut > 0.0 {
                let (r, v) = (&mut col.rows, &mut col.values);
                let mut kept = 0;
                for t in 0..r.len() {
                    if v[t] >= cut {
                        r[kept] = r[t];
                        v[kept] = v[t];
                        kept += 1;
                    }
                }
                r.truncate(kept);
                v.truncate(kept);
            }
        }
    }
}

/// The buffers of [`PencilBeam::compute_batch`]: one column per beamlet of
/// the leaf pair, the column -> beamlet slot map, the running maxima and
/// the erf values at the bixel edges.
#[derive(Default)]
struct BatchScratch {
    slot: Vec<u32>,
    cols: Vec<BeamletColumn>,
    vmax: Vec<f32>,
    edges: Vec<[f32; N_COMPONENTS]>,
}

/// The erf values at the pixel edges of a fluence map for one voxel at a
/// time, each computed on first use: an entry is valid when its stamp is
/// the current voxel's.
struct EdgeMemo {
    stamp: Vec<u32>,
    erf: Vec<[f32; N_COMPONENTS]>,
    now: u32,
}

impl EdgeMemo {
    fn new(n_edges: usize) -> Self {
        Self {
            stamp: vec![0; n_edges],
            erf: vec![[0.0; N_COMPONENTS]; n_edges],
            now: 0,
        }
    }

    /// Invalidates every entry.
    fn next_voxel(&mut self) {
        self.now = self.now.wrapping_add(1);
        if self.now == 0 {
            self.stamp.fill(0);
            self.now = 1;
        }
    }

    #[inline]
    fn get(
        &mut self,
        n: usize,
        compute: impl FnOnce(usize) -> [f32; N_COMPONENTS],
    ) -> [f32; N_COMPONENTS] {
        if self.stamp[n] != self.now {
            self.stamp[n] = self.now;
            self.erf[n] = compute(n);
        }
        self.erf[n]
    }
}

impl PreparedBeam for PencilBeam {
    fn beam_index(&self) -> usize {
        self.beam_index
    }

    fn beamlet_range(&self) -> Range<usize> {
        self.range.clone()
    }

    fn column(&self, beamlet: usize, out: &mut BeamletColumn) -> Result<()> {
        if !self.range.contains(&beamlet) {
            return Err(Error::invalid(
                "beamlet",
                format!(
                    "{beamlet} does not belong to beam {} (beamlets {:?})",
                    self.beam_index, self.range
                ),
            ));
        }
        // Compute straight into `out`, so that a reused column keeps its
        // allocation.
        let mut scratch = BatchScratch {
            cols: vec![std::mem::take(out)],
            ..BatchScratch::default()
        };
        self.compute_batch(beamlet..beamlet + 1, &mut scratch);
        *out = scratch.cols.swap_remove(0);
        Ok(())
    }

    fn column_batches(&self) -> Vec<Range<usize>> {
        self.leaf_pair_runs(self.range.clone()).collect()
    }

    fn batch_columns(&self, batch: Range<usize>, emit: &mut ColumnSink<'_>) -> Result<()> {
        if batch.start < self.range.start || batch.end > self.range.end {
            return Err(Error::invalid(
                "beamlet batch",
                format!(
                    "{batch:?} is not inside beam {}'s beamlets {:?}",
                    self.beam_index, self.range
                ),
            ));
        }
        let mut scratch = BatchScratch::default();
        for run in self.leaf_pair_runs(batch) {
            let (start, n) = (run.start, run.len());
            self.compute_batch(run, &mut scratch);
            for (i, col) in scratch.cols[..n].iter().enumerate() {
                emit(start + i, &col.rows, &col.values)?;
            }
        }
        Ok(())
    }

    fn fluence_dose(&self, fluence: &FluenceMap, dose: &mut [f64]) -> Result<()> {
        if dose.len() != self.n_rows {
            return Err(Error::invalid(
                "dose output",
                format!("{} entries for {} rows", dose.len(), self.n_rows),
            ));
        }
        let erf = ErfTable::get();
        let (x0, y0) = (fluence.x0_mm(), fluence.y0_mm());
        let (pdx, pdy) = (fluence.dx_mm(), fluence.dy_mm());
        let (ncol, nrow) = (fluence.n_cols(), fluence.n_rows());
        let vals = fluence.values();
        let cutoff = f64::from(self.cutoff);
        // The erf values at a pixel edge depend on the voxel and the edge
        // only: each is computed once per voxel (not once per map row) and
        // the y factors only for rows that hold fluence.
        let per_voxel: Vec<f64> = (0..self.row.len())
            .into_par_iter()
            .map_init(
                || EdgeMemo::new(ncol + 1),
                |memo, e| {
                    let (x, y) = (f64::from(self.x[e]), f64::from(self.y[e]));
                    let amp = self.amp[e];
                    let inv = self.inv[e];
                    memo.next_voxel();
                    // erf at the left edge of pixel column `n` (n = ncol: the
                    // right edge of the last column).
                    let edge_erf = |n: usize| {
                        let xe = (x0 + (n as f64 - 0.5) * pdx - x) as f32;
                        inv.map(|s| erf.erf(xe * s))
                    };
                    let mut acc = [0.0f64; N_COMPONENTS];
                    for jr in 0..nrow {
                        let yc = y0 + jr as f64 * pdy;
                        let dy = yc - y;
                        // Pixel columns whose centres lie within the cut-off circle.
                        let (c_lo, c_hi) = if cutoff.is_finite() {
                            if dy.abs() > cutoff {
                                continue;
                            }
                            let hc = (cutoff * cutoff - dy * dy).sqrt();
                            let lo = ((x - hc - x0) / pdx).ceil().max(0.0);
                            let hi = ((x + hc - x0) / pdx).floor().min(ncol as f64 - 1.0);
                            if hi < lo {
                                continue;
                            }
                            (lo as usize, hi as usize)
                        } else {
                            (0, ncol - 1)
                        };
                        let line = &vals[jr * ncol..(jr + 1) * ncol];
                        let mut fy: Option<[f32; N_COMPONENTS]> = None;
                        let mut c = c_lo;
                        while c <= c_hi {
                            let v = line[c];
                            let mut end = c;
                            while end < c_hi && line[end + 1].to_bits() == v.to_bits() {
                                end += 1;
                            }
                            if v > 0.0 {
                                let fy = *fy.get_or_insert_with(|| {
                                    let (ya, yb) =
                                        ((dy - 0.5 * pdy) as f32, (dy + 0.5 * pdy) as f32);
                                    inv.map(|s| erf.half_diff(ya * s, yb * s))
                                });
                                let ea = memo.get(c, edge_erf);
                                let eb = memo.get(end + 1, edge_erf);
                                for k in 0..N_COMPONENTS {
                                    if amp[k] != 0.0 {
                                        let fx = 0.5 * (eb[k] - ea[k]);
                                        acc[k] += v * f64::from(fx) * f64::from(fy[k]);
                                    }
                                }
                            }
                            c = end + 1;
                        }
                    }
                    (0..N_COMPONENTS).map(|k| f64::from(amp[k]) * acc[k]).sum()
                },
            )
            .collect();
        for (e, v) in per_voxel.into_iter().enumerate() {
            dose[self.row[e] as usize] += v;
        }
        Ok(())
    }
}

/// Radiological depth, amplitudes and inverse widths of one voxel.
type VoxelKernel = (f32, [f32; N_COMPONENTS], [f32; N_COMPONENTS]);

fn inside_box(grid: &Grid, p: PointMm) -> bool {
    let idx = grid.patient_to_index(p);
    let dims = grid.dims();
    (0..3).all(|a| idx[a] >= -0.5 && idx[a] <= dims[a] as f64 - 0.5)
}

/// Radiological depth samples on a grid of rays through the isocentre plane.
struct RayGrid {
    x0: f64,
    y0: f64,
    step: f64,
    nx: usize,
    ny: usize,
    r0: f64,
    dr: f64,
    ns: usize,
    depth: Vec<f32>,
}

impl RayGrid {
    #[allow(clippy::too_many_arguments)]
    fn trace(
        g: &BeamGeometry,
        patient: &PatientModel,
        surface: f32,
        (x0, x1): (f64, f64),
        (y0, y1): (f64, f64),
        (r0, r1): (f64, f64),
        step: f64,
        dr: f64,
    ) -> Self {
        // Samples on a lattice fixed to the beam (lateral multiples of `step`
        // from the central axis, multiples of `dr` from the source), so a
        // voxel's depth does not depend on which other voxels are prepared
        // (the dose rows, the lateral cut-off).
        let anchor = |v: f64, s: f64| (v / s).floor() * s;
        let (x0, y0, r0) = (anchor(x0, step), anchor(y0, step), anchor(r0, dr));
        let nx = ((x1 - x0) / step).ceil() as usize + 2;
        let ny = ((y1 - y0) / step).ceil() as usize + 2;
        let ns = ((r1 - r0) / dr).ceil() as usize + 2;
        let r_end = r0 + (ns - 1) as f64 * dr + dr;
        let mut depth = vec![0.0f32; nx * ny * ns];
        let grid = patient.grid();
        let dens = patient.density().as_slice();
        depth.par_chunks_mut(ns).enumerate().for_each(|(ray, out)| {
            let (i, j) = (ray % nx, ray / nx);
            let (x, y) = (x0 + i as f64 * step, y0 + j as f64 * step);
            let d = ray_direction(g, x, y);
            let end = [0, 1, 2].map(|c| g.source_mm[c] + r_end * d[c]);
            let scale = r_end * norm(d);
            let mut cum = 0.0f64;
            let mut surfaced = false;
            let mut n = 0usize;
            let t_of = |n: usize| (r0 + n as f64 * dr) / r_end;
            traverse(grid, dens, g.source_mm, end, |t0, t1, rho| {
                if !surfaced && rho >= surface {
                    surfaced = true;
                }
                let rho = if surfaced { f64::from(rho) } else { 0.0 };
                while n < ns && t_of(n) <= t1 {
                    out[n] = (cum + rho * (t_of(n) - t0).max(0.0) * scale) as f32;
                    n += 1;
                }
                cum += rho * (t1 - t0) * scale;
            });
            while n < ns {
                out[n] = cum as f32;
                n += 1;
            }
        });
        Self {
            x0,
            y0,
            step,
            nx,
            ny,
            r0,
            dr,
            ns,
            depth,
        }
    }

    /// Trilinear interpolation of the radiological depth at `(x, y, r)`.
    fn depth_at(&self, x: f64, y: f64, r: f64) -> f64 {
        let locate = |v: f64, n: usize| -> (usize, f64) {
            let v = v.clamp(0.0, (n - 1) as f64);
            let i = (v.floor() as usize).min(n - 2);
            (i, v - i as f64)
        };
        let (i, fx) = locate((x - self.x0) / self.step, self.nx);
        let (j, fy) = locate((y - self.y0) / self.step, self.ny);
        let (n, fr) = locate((r - self.r0) / self.dr, self.ns);
        let at = |i: usize, j: usize| {
            let base = (j * self.nx + i) * self.ns + n;
            let a = f64::from(self.depth[base]);
            let b = f64::from(self.depth[base + 1]);
            a + (b - a) * fr
        };
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        lerp(
            lerp(at(i, j), at(i + 1, j), fx),
            lerp(at(i, j + 1), at(i + 1, j + 1), fx),
            fy,
        )
    }
}

#[inline]
fn ray_direction(g: &BeamGeometry, x: f64, y: f64) -> [f64; 3] {
    let (u, v) = (x / g.sad_mm, y / g.sad_mm);
    [0, 1, 2].map(|c| g.axis[c] + u * g.bev_x[c] + v * g.bev_y[c])
}

#[inline]
fn norm(d: [f64; 3]) -> f64 {
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// Source-to-surface distance along the central axis, if it enters.
fn central_ssd(g: &BeamGeometry, patient: &PatientModel, surface: f32) -> Option<f64> {
    let far = 4.0 * g.sad_mm;
    let end = [0, 1, 2].map(|c| g.source_mm[c] + far * g.axis[c]);
    let mut ssd = None;
    traverse(
        patient.grid(),
        patient.density().as_slice(),
        g.source_mm,
        end,
        |t0, _, rho| {
            if ssd.is_none() && rho >= surface {
                ssd = Some(t0 * far);
            }
        },
    );
    ssd
}

fn prepare(
    engine: &PencilBeamEngine,
    patient: &PatientModel,
    rows: &DoseRows,
    layout: &BeamletLayout,
    b: usize,
    beam: &Beam,
) -> Result<PencilBeam> {
    let machine = &engine.machine;
    let opt = &engine.options;
    if b >= layout.n_beams() {
        return Err(Error::invalid(
            "beam index",
            format!("{b} but the layout has {} beams", layout.n_beams()),
        ));
    }
    if (beam.sad_mm() - machine.sad_mm()).abs() > 1e-6 {
        return Err(Error::invalid(
            "beam SAD",
            format!(
                "beam \"{}\" has SAD {} mm but machine \"{}\" is commissioned at {} mm",
                beam.name(),
                beam.sad_mm(),
                machine.params().name,
                machine.sad_mm()
            ),
        ));
    }
    let g = beam.geometry(patient.position())?;
    let ct = patient.grid();
    if !inside_box(ct, g.isocenter_mm) {
        return Err(Error::IsocenterOutside {
            beam: beam.name().to_string(),
            isocenter_mm: g.isocenter_mm,
            ct_box_mm: ct.bounding_box_mm(),
        });
    }
    let range = layout.beam_range(b);
    let (w, h) = (layout.bixel_width_mm(), layout.leaf_width_mm());
    let centers: Vec<[f64; 2]> = range.clone().map(|j| layout.center_mm(j)).collect();
    let surface = opt.surface_density as f32;
    let ssd_mm = central_ssd(&g, patient, surface);
    let cutoff = opt.lateral_cutoff_mm;
    let mut pb = PencilBeam {
        beam_index: b,
        range: range.clone(),
        rc: range
            .clone()
            .map(|j| {
                let bl = layout.beamlet(j);
                (bl.row, bl.col)
            })
            .collect(),
        gx0: layout.beam_grids()[b].x0_mm as f32,
        gy0: layout.beam_grids()[b].y0_mm as f32,
        w: w as f32,
        h: h as f32,
        cutoff: cutoff as f32,
        threshold: opt.relative_threshold as f32,
        n_rows: rows.len(),
        ssd_mm,
        x: Vec::new(),
        y: Vec::new(),
        row: Vec::new(),
        amp: Vec::new(),
        inv: Vec::new(),
        depth: Vec::new(),
    };
    if centers.is_empty() {
        return Ok(pb);
    }
    // The field region: beamlet centres grown by the cut-off.
    let (mut fx0, mut fx1, mut fy0, mut fy1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for c in &centers {
        fx0 = fx0.min(c[0] - cutoff);
        fx1 = fx1.max(c[0] + cutoff);
        fy0 = fy0.min(c[1] - cutoff);
        fy1 = fy1.max(c[1] + cutoff);
    }
    let dose_grid = rows.grid();
    let candidates: Vec<(u32, f64, f64, f64)> = rows
        .voxels()
        .par_iter()
        .enumerate()
        .filter_map(|(r, &v)| {
            let p = dose_grid.voxel_center(dose_grid.voxel_index(v as usize));
            if !inside_box(ct, p) {
                return None;
            }
            let ([x, y], along) = g.project(p)?;
            (x >= fx0 && x <= fx1 && y >= fy0 && y <= fy1).then_some((r as u32, x, y, along))
        })
        .collect();
    if candidates.is_empty() {
        return Err(Error::BeamMissesPatient {
            beam: beam.name().to_string(),
            reason: format!(
                "none of the {} dose rows lies inside the CT within the field plus the {cutoff} mm cut-off",
                rows.len()
            ),
        });
    }
    let bound = |f: fn(&(u32, f64, f64, f64)) -> f64| {
        candidates
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    };
    let bx = bound(|c| c.1);
    let by = bound(|c| c.2);
    let br = bound(|c| c.3);
    let min_spacing = ct
        .spacing_mm()
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let step = opt.ray_spacing_mm.unwrap_or(min_spacing);
    let rays = RayGrid::trace(&g, patient, surface, bx, by, br, step, min_spacing);
    let kernels: Vec<Option<VoxelKernel>> = candidates
        .par_iter()
        .map(|&(_, x, y, along)| {
            let z = rays.depth_at(x, y, along);
            if z <= 0.0 {
                return None;
            }
            let k = machine.kernel(z, along);
            let total: f64 = k.amplitude.iter().sum();
            let amp = k
                .amplitude
                .map(|a| if a > 1e-9 * total { a as f32 } else { 0.0 });
            let inv = k
                .sigma_iso_mm
                .map(|s| (1.0 / (std::f64::consts::SQRT_2 * s)) as f32);
            Some((z as f32, amp, inv))
        })
        .collect();
    drop(rays);
    let n_kept = kernels.iter().filter(|k| k.is_some()).count();
    if n_kept == 0 {
        return Err(Error::BeamMissesPatient {
            beam: beam.name().to_string(),
            reason: "no ray of the field enters the patient before reaching a dose row".into(),
        });
    }
    pb.x = Vec::with_capacity(n_kept);
    pb.y = Vec::with_capacity(n_kept);
    pb.row = Vec::with_capacity(n_kept);
    pb.amp = Vec::with_capacity(n_kept);
    pb.inv = Vec::with_capacity(n_kept);
    pb.depth = Vec::with_capacity(n_kept);
    for (c, k) in candidates.iter().zip(&kernels) {
        if let Some((z, amp, inv)) = k {
            pb.x.push(c.1 as f32);
            pb.y.push(c.2 as f32);
            pb.row.push(c.0);
            pb.amp.push(*amp);
            pb.inv.push(*inv);
            pb.depth.push(*z);
        }
    }
    Ok(pb)
}
