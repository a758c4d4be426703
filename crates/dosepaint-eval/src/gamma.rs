//! The 3-D gamma index (Low et al. 1998) between a reference and an
//! evaluated dose distribution, on possibly different grids.
//!
//! For a reference voxel at `r` with dose `R(r)`,
//! `gamma(r) = min over e of sqrt(|e - r|^2 / DTA^2 + (E(e) - R(r))^2 / dD^2)`,
//! where `E` is the evaluated dose, trilinearly interpolated, and `dD` the
//! dose criterion in Gy (global: a fraction of one normalisation dose; local:
//! a fraction of `R(r)`). The minimum runs over a regular sub-grid of points
//! `e = r + (DTA / N) (m_i e_i + m_j e_j + m_k e_k)` (`m` integer, `e_*` the
//! reference grid's axes, `N` the interpolation fraction) inside the search
//! sphere `|m|^2 <= floor((R_search N / DTA)^2)`, as in pymedphys
//! (`interp_fraction`). Points where `E` is not defined (outside the
//! evaluated grid's boundary box) are not candidates.
//!
//! Speed: the offsets are generated once per call and sorted by distance; a
//! voxel's search stops as soon as `|m|^2 / N^2` alone reaches the best
//! `gamma^2` found (exact: no farther point can do better). When both grids
//! share spacing and axes (the common case, also after
//! [`Gamma::compute_resampled`]) the offsets are grouped by the evaluated
//! grid cell they fall in, with their interpolation weights precomputed; a
//! whole cell is skipped when its nearest offset and the range of its eight
//! corner doses cannot beat the best value (exact as well: a trilinear value
//! lies within its corners' range). Only in pass-rate mode does a voxel stop
//! at its first point with `gamma <= 1`, because a gamma map needs each
//! voxel's true minimum.

use dosepaint_core::{Grid, Interpolation, Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sample::{check_dose_volume, ensure_same_grid};
use crate::{Error, Result};

/// Most search offsets a gamma evaluation may use (64 MB of offsets, twice
/// that while they are sorted); `(4/3) pi (R_search N / DTA)^3` must stay
/// below this.
pub const MAX_SEARCH_OFFSETS: usize = 2_000_000;

/// Tolerance on the boundary box of the evaluated grid, in voxels (the same
/// as core's trilinear sampling).
const BOX_EPS: f64 = 1e-9;

/// How the dose criterion is turned into Gy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Normalization {
    /// `dD = criterion x dose_gy` for every voxel; `dose_gy` defaults to the
    /// maximum of the reference dose.
    Global {
        /// The normalisation dose, Gy (`None`: the reference maximum).
        #[serde(default)]
        dose_gy: Option<f64>,
    },
    /// `dD = criterion x R(r)`, the reference dose at the voxel itself.
    Local,
}

/// Settings of a gamma evaluation; validate them with
/// [`GammaParams::check`].
///
/// ```
/// use dosepaint_eval::{GammaParams, Normalization};
/// // 3 %/3 mm global with a 10 % low-dose cut-off (the defaults).
/// let params = GammaParams::default();
/// assert_eq!(params.normalization, Normalization::Global { dose_gy: None });
/// // 2 %/2 mm local:
/// let local = GammaParams {
///     dose_difference_percent: 2.0,
///     distance_to_agreement_mm: 2.0,
///     normalization: Normalization::Local,
///     ..GammaParams::default()
/// };
/// assert!(local.check().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GammaParams {
    /// Dose criterion, % (of the normalisation dose, or of the local dose).
    pub dose_difference_percent: f64,
    /// Distance-to-agreement criterion, mm.
    pub distance_to_agreement_mm: f64,
    /// Global or local dose difference.
    pub normalization: Normalization,
    /// Reference voxels below this percentage of the global normalisation
    /// dose (the reference maximum for local gamma) are not evaluated.
    pub lower_dose_cutoff_percent: f64,
    /// `N`: the evaluated dose is interpolated on a sub-grid of step
    /// `DTA / N` (pymedphys' `interp_fraction`).
    pub interpolation_fraction: u32,
    /// Radius of the search sphere, mm (`None`: twice the DTA). Must be at
    /// least the DTA so that pass/fail never depends on it; a gamma larger
    /// than `R_search / DTA` is the minimum over the sphere, an upper bound
    /// of the unbounded minimum, which is itself at least `R_search / DTA`.
    pub max_search_distance_mm: Option<f64>,
}

impl Default for GammaParams {
    fn default() -> Self {
        Self {
            dose_difference_percent: 3.0,
            distance_to_agreement_mm: 3.0,
            normalization: Normalization::Global { dose_gy: None },
            lower_dose_cutoff_percent: 10.0,
            interpolation_fraction: 10,
            max_search_distance_mm: None,
        }
    }
}

impl GammaParams {
    /// Validates the settings.
    ///
    /// # Errors
    /// A criterion that is not positive and finite, a cut-off outside
    /// `[0, 100)` (or zero for local gamma, whose criterion vanishes with the
    /// dose), an interpolation fraction of 0, a search radius below the DTA,
    /// a normalisation dose that is not positive and finite, or a search
    /// needing more than [`MAX_SEARCH_OFFSETS`] offsets.
    pub fn check(self) -> Result<Gamma> {
        let dd = self.dose_difference_percent;
        let dta = self.distance_to_agreement_mm;
        if !(dd.is_finite() && dd > 0.0) {
            return Err(Error::invalid(
                "gamma dose criterion",
                format!("{dd} % must be positive and finite"),
            ));
        }
        if !(dta.is_finite() && dta > 0.0) {
            return Err(Error::invalid(
                "gamma distance to agreement",
                format!("{dta} mm must be positive and finite"),
            ));
        }
        let cutoff = self.lower_dose_cutoff_percent;
        if !(0.0..100.0).contains(&cutoff) {
            return Err(Error::invalid(
                "gamma lower dose cut-off",
                format!("{cutoff} % must lie in [0, 100)"),
            ));
        }
        match self.normalization {
            Normalization::Local if cutoff <= 0.0 => {
                return Err(Error::invalid(
                    "gamma lower dose cut-off",
                    "local gamma needs a positive cut-off (its dose criterion is zero at zero dose)",
                ));
            }
            Normalization::Global { dose_gy: Some(d) } if !(d.is_finite() && d > 0.0) => {
                return Err(Error::invalid(
                    "gamma normalisation dose",
                    format!("{d} Gy must be positive and finite"),
                ));
            }
            _ => {}
        }
        let n = self.interpolation_fraction;
        if n == 0 {
            return Err(Error::invalid(
                "gamma interpolation fraction",
                "must be at least 1 (sub-grid step = DTA / fraction)",
            ));
        }
        let search = self.max_search_distance_mm.unwrap_or(2.0 * dta);
        if !(search.is_finite() && search >= dta) {
            return Err(Error::invalid(
                "gamma maximum search distance",
                format!("{search} mm must be finite and at least the DTA ({dta} mm)"),
            ));
        }
        let radius_steps = search * f64::from(n) / dta;
        let estimate = 4.0 / 3.0 * std::f64::consts::PI * radius_steps.powi(3);
        if estimate.is_nan() || estimate > MAX_SEARCH_OFFSETS as f64 {
            return Err(Error::invalid(
                "gamma search",
                format!(
                    "a search radius of {search} mm with steps of {} mm needs about {estimate:.0} offsets (at most {MAX_SEARCH_OFFSETS}); lower the interpolation fraction or the search distance",
                    dta / f64::from(n)
                ),
            ));
        }
        // Largest |m|^2 inside the sphere (a tiny relative tolerance keeps
        // an exact radius such as 2 DTA inclusive).
        let max_m2 = (radius_steps * radius_steps * (1.0 + 1e-12)).floor() as i64;
        Ok(Gamma {
            params: self,
            criterion: dd / 100.0,
            max_m2,
            max_m: (max_m2 as f64).sqrt().floor() as i64,
        })
    }
}

/// A validated gamma evaluation.
///
/// ```
/// use dosepaint_core::{Grid, Volume};
/// use dosepaint_eval::GammaParams;
/// let grid = Grid::new([20, 20, 10], [2.5; 3], [0.0; 3])?;
/// let reference = Volume::from_fn(grid.clone(), |[i, j, k]| {
///     let r2 = ((i as f64 - 10.0).powi(2) + (j as f64 - 10.0).powi(2) + (k as f64 - 5.0).powi(2)) * 6.25;
///     (60.0 * (-r2 / (2.0 * 15.0f64.powi(2))).exp()) as f32
/// });
/// // 2 % more dose everywhere: gamma <= 2/3 at 3 %/3 mm global.
/// let evaluated = reference.map(|&d| d * 1.02);
/// let gamma = GammaParams::default().check()?;
/// let result = gamma.compute(&reference, &evaluated)?;
/// assert_eq!(result.passed_voxels, result.evaluated_voxels);
/// assert!(result.max_gamma <= 2.0 / 3.0 + 1e-6);
/// let rate = gamma.pass_rate(&reference, &evaluated)?;
/// assert_eq!(rate.passed_voxels, result.passed_voxels);
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gamma {
    params: GammaParams,
    /// Dose criterion as a fraction.
    criterion: f64,
    /// Largest `|m|^2` of a search offset.
    max_m2: i64,
    /// Largest `|m_a|`.
    max_m: i64,
}

/// Gamma values of the reference voxels on the reference grid: `NaN` where
/// a voxel was not evaluated (below the cut-off or outside the region),
/// `+inf` where no evaluated dose exists within the search distance.
pub type GammaMap = Volume<f32>;

/// The outcome of [`Gamma::compute`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GammaResult {
    /// The gamma map (see [`GammaMap`]). A failing voxel is never shown as
    /// `<= 1` after rounding to `f32`.
    #[serde(with = "map_serde")]
    pub map: GammaMap,
    /// Voxels evaluated (at or above the cut-off, inside the region).
    pub evaluated_voxels: usize,
    /// Evaluated voxels with `gamma <= 1`.
    pub passed_voxels: usize,
    /// `passed / evaluated`, in `[0, 1]`.
    pub pass_rate: f64,
    /// Evaluated voxels with no evaluated dose within the search distance
    /// (gamma `+inf`, counted as failing).
    pub uncovered_voxels: usize,
    /// Evaluated voxels whose gamma exceeds `R_search / DTA`: their value is
    /// the minimum over the search sphere, an upper bound of the unbounded
    /// minimum (all of them fail).
    pub search_limited_voxels: usize,
    /// Mean gamma over the covered evaluated voxels.
    pub mean_gamma: f64,
    /// Largest gamma over the covered evaluated voxels.
    pub max_gamma: f64,
    /// The dose the criterion refers to (global), or the reference maximum
    /// (local), Gy.
    pub normalization_dose_gy: f64,
    /// Reference voxels below this dose (Gy) were not evaluated.
    pub cutoff_dose_gy: f64,
    /// The settings used.
    pub params: GammaParams,
}

/// The outcome of [`Gamma::pass_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GammaPassRate {
    /// Voxels evaluated.
    pub evaluated_voxels: usize,
    /// Evaluated voxels with `gamma <= 1`.
    pub passed_voxels: usize,
    /// `passed / evaluated`, in `[0, 1]`.
    pub pass_rate: f64,
}

/// Whether the evaluation needs each voxel's minimum or only pass/fail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Map,
    PassOnly,
}

/// `gamma^2` threshold in pass-rate mode: any value strictly below it is
/// `<= 1`.
const PASS_LIMIT: f64 = 1.0 + f64::EPSILON;

impl Gamma {
    /// The settings.
    pub fn params(&self) -> &GammaParams {
        &self.params
    }

    /// The gamma map and pass rate of `evaluated` against `reference`. The
    /// grids may differ (the evaluated dose is interpolated wherever it is
    /// needed); the map lies on the reference grid.
    ///
    /// # Errors
    /// A NaN, infinite or negative dose in either volume (the voxel is
    /// named), a reference without positive dose, or no reference voxel at or
    /// above the cut-off.
    pub fn compute(&self, reference: &Volume<f32>, evaluated: &Volume<f32>) -> Result<GammaResult> {
        self.compute_impl(reference, evaluated, None, true)
    }

    /// As [`Gamma::compute`], evaluating only reference voxels inside
    /// `region` (e.g. the body), which must lie on the reference grid.
    ///
    /// # Errors
    /// As [`Gamma::compute`], plus a region on another grid.
    pub fn compute_within(
        &self,
        reference: &Volume<f32>,
        evaluated: &Volume<f32>,
        region: &Structure,
    ) -> Result<GammaResult> {
        self.compute_impl(reference, evaluated, Some(region), true)
    }

    /// Resample-then-compare: `evaluated` is first resampled onto the
    /// reference grid with core's trilinear sampling (reference voxels
    /// outside the evaluated grid get no evaluated dose), then compared on
    /// that one grid. Faster than [`Gamma::compute`] on different grids, at
    /// the price of interpolating twice.
    ///
    /// # Errors
    /// As [`Gamma::compute`].
    pub fn compute_resampled(
        &self,
        reference: &Volume<f32>,
        evaluated: &Volume<f32>,
    ) -> Result<GammaResult> {
        check_dose_volume(evaluated, "evaluated dose")?;
        let on_reference = evaluated.resample(reference.grid(), Interpolation::Linear, f32::NAN);
        // NaN marks "no evaluated dose": a sub-grid point interpolating
        // from such a voxel is not a candidate.
        self.compute_impl(reference, &on_reference, None, false)
    }

    /// Only the pass rate: a voxel's search stops at its first point with
    /// `gamma <= 1`, or as soon as the distance alone exceeds the DTA.
    ///
    /// # Errors
    /// As [`Gamma::compute`].
    pub fn pass_rate(
        &self,
        reference: &Volume<f32>,
        evaluated: &Volume<f32>,
    ) -> Result<GammaPassRate> {
        self.pass_rate_impl(reference, evaluated, None)
    }

    /// As [`Gamma::pass_rate`] inside `region` (on the reference grid).
    ///
    /// # Errors
    /// As [`Gamma::compute_within`].
    pub fn pass_rate_within(
        &self,
        reference: &Volume<f32>,
        evaluated: &Volume<f32>,
        region: &Structure,
    ) -> Result<GammaPassRate> {
        self.pass_rate_impl(reference, evaluated, Some(region))
    }

    fn pass_rate_impl(
        &self,
        reference: &Volume<f32>,
        evaluated: &Volume<f32>,
        region: Option<&Structure>,
    ) -> Result<GammaPassRate> {
        let setup = self.setup(reference, evaluated, region, true)?;
        let rows = run(&setup, None);
        let (mut evaluated_n, mut passed) = (0, 0);
        for row in &rows {
            evaluated_n += row.evaluated;
            passed += row.passed;
        }
        Ok(GammaPassRate {
            evaluated_voxels: evaluated_n,
            passed_voxels: passed,
            pass_rate: passed as f64 / evaluated_n as f64,
        })
    }

    fn compute_impl(
        &self,
        reference: &Volume<f32>,
        evaluated: &Volume<f32>,
        region: Option<&Structure>,
        check_evaluated: bool,
    ) -> Result<GammaResult> {
        let setup = self.setup(reference, evaluated, region, check_evaluated)?;
        // The map is written in place, row by row; voxels not evaluated stay NaN.
        let mut values = vec![f32::NAN; reference.grid().n_voxels()];
        let rows = run(&setup, Some(&mut values));
        let (mut evaluated_n, mut passed, mut uncovered, mut limited) = (0, 0, 0, 0);
        let (mut sum, mut max) = (0.0, 0.0f64);
        for row in &rows {
            evaluated_n += row.evaluated;
            passed += row.passed;
            uncovered += row.uncovered;
            limited += row.limited;
            sum += row.sum;
            max = max.max(row.max);
        }
        let covered = evaluated_n - uncovered;
        let map = Volume::from_vec(reference.grid().clone(), values)?;
        Ok(GammaResult {
            map,
            evaluated_voxels: evaluated_n,
            passed_voxels: passed,
            pass_rate: passed as f64 / evaluated_n as f64,
            uncovered_voxels: uncovered,
            search_limited_voxels: limited,
            mean_gamma: if covered > 0 {
                sum / covered as f64
            } else {
                f64::NAN
            },
            max_gamma: if covered > 0 { max } else { f64::NAN },
            normalization_dose_gy: setup.norm_dose,
            cutoff_dose_gy: setup.cutoff,
            params: self.params,
        })
    }

    /// Validates the inputs and prepares the search.
    fn setup<'a>(
        &self,
        reference: &'a Volume<f32>,
        evaluated: &Volume<f32>,
        region: Option<&'a Structure>,
        check_evaluated: bool,
    ) -> Result<Setup<'a>> {
        check_dose_volume(reference, "reference dose")?;
        if check_evaluated {
            check_dose_volume(evaluated, "evaluated dose")?;
        }
        if let Some(r) = region {
            ensure_same_grid(
                reference.grid(),
                r.grid(),
                &format!("reference dose grid vs grid of region \"{}\"", r.name()),
            )?;
        }
        let ref_max = reference
            .as_slice()
            .iter()
            .fold(0.0f64, |m, &d| m.max(f64::from(d)));
        if ref_max <= 0.0 {
            return Err(Error::empty(
                "reference dose",
                "it is zero everywhere, so no gamma criterion or cut-off can be set",
            ));
        }
        let norm_dose = match self.params.normalization {
            Normalization::Global { dose_gy } => dose_gy.unwrap_or(ref_max),
            Normalization::Local => ref_max,
        };
        let cutoff = self.params.lower_dose_cutoff_percent / 100.0 * norm_dose;
        let mask = region.map(|r| r.mask().as_slice());
        let any = reference
            .as_slice()
            .iter()
            .enumerate()
            .any(|(n, &d)| f64::from(d) >= cutoff && mask.is_none_or(|m| m[n]));
        if !any {
            return Err(Error::empty(
                "gamma evaluation",
                format!(
                    "no reference voxel{} has a dose at or above the cut-off of {cutoff} Gy",
                    region.map_or(String::new(), |r| format!(" inside \"{}\"", r.name()))
                ),
            ));
        }
        // Any point beyond the sphere has a distance term above
        // (R_search / DTA)^2, so a minimum up to R_search / DTA is exact.
        let dta = self.params.distance_to_agreement_mm;
        let search_limit_gamma = self.params.max_search_distance_mm.unwrap_or(2.0 * dta) / dta;
        let padded = Padded::new(evaluated);
        let offsets = self.offsets(reference.grid(), evaluated.grid());
        let reach = offsets.iter().fold([0.0f64; 3], |r, o| {
            std::array::from_fn(|a| r[a].max(o.delta[a].abs()))
        });
        let lattice = same_lattice(reference.grid(), evaluated.grid()).then(|| {
            let t = evaluated
                .grid()
                .patient_to_index(reference.grid().origin_mm());
            Lattice::new(&offsets, t)
        });
        Ok(Setup {
            reference,
            mask,
            eval_grid: evaluated.grid().clone(),
            padded,
            offsets,
            reach,
            lattice,
            inv_dd2_global: match self.params.normalization {
                Normalization::Global { .. } => {
                    let dd = self.criterion * norm_dose;
                    Some(1.0 / (dd * dd))
                }
                Normalization::Local => None,
            },
            criterion: self.criterion,
            cutoff,
            norm_dose,
            search_limit_gamma,
        })
    }

    /// The search offsets, sorted by distance (then by `m`), with their
    /// displacement in evaluated-grid index units.
    fn offsets(&self, reference: &Grid, evaluated: &Grid) -> Vec<Offset> {
        let n = f64::from(self.params.interpolation_fraction);
        let dta = self.params.distance_to_agreement_mm;
        let rdir = reference.direction();
        let edir = evaluated.direction();
        let es = evaluated.spacing_mm();
        let mut keyed = Vec::new();
        let mm = self.max_m;
        for mk in -mm..=mm {
            for mj in -mm..=mm {
                for mi in -mm..=mm {
                    let m2 = mi * mi + mj * mj + mk * mk;
                    if m2 > self.max_m2 {
                        continue;
                    }
                    // Displacement in mm along the reference axes.
                    let step = [mi, mj, mk].map(|m| m as f64 * dta / n);
                    let mut p = [0.0; 3];
                    for a in 0..3 {
                        for c in 0..3 {
                            p[c] += step[a] * rdir[a][c];
                        }
                    }
                    let delta: [f64; 3] = std::array::from_fn(|b| {
                        (0..3).map(|c| p[c] * edir[b][c]).sum::<f64>() / es[b]
                    });
                    let offset = Offset {
                        r2: m2 as f64 / (n * n),
                        delta,
                    };
                    keyed.push((m2, [mi, mj, mk], offset));
                }
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|(_, _, o)| o).collect()
    }
}

/// Evaluates every row `(j, k)` of the reference grid in parallel. With
/// `map` (one slot per reference voxel, pre-filled with NaN) each evaluated
/// voxel's gamma is written into its slot and every voxel's minimum is
/// searched; without it only pass/fail is decided.
fn run(s: &Setup<'_>, map: Option<&mut [f32]>) -> Vec<RowTally> {
    let [nx, ny, nz] = s.reference.grid().dims();
    match map {
        Some(map) => {
            debug_assert_eq!(map.len(), nx * ny * nz);
            map.par_chunks_mut(nx)
                .enumerate()
                .map(|(row, out)| run_row(s, row, Some(out)))
                .collect()
        }
        None => (0..ny * nz)
            .into_par_iter()
            .map(|row| run_row(s, row, None))
            .collect(),
    }
}

/// One row of [`run`]: `row = j + ny k`, its map slots in `out` (map mode).
fn run_row(s: &Setup<'_>, row: usize, mut out: Option<&mut [f32]>) -> RowTally {
    let [nx, ny, _] = s.reference.grid().dims();
    let (j, k) = (row % ny, row / ny);
    let (mode, init) = if out.is_some() {
        (Mode::Map, f64::INFINITY)
    } else {
        (Mode::PassOnly, PASS_LIMIT)
    };
    let mut tally = RowTally::default();
    let rdose = &s.reference.as_slice()[row * nx..(row + 1) * nx];
    for (i, &r) in rdose.iter().enumerate() {
        let r = f64::from(r);
        let inside = s.mask.is_none_or(|m| m[row * nx + i]);
        if !(inside && r >= s.cutoff) {
            continue;
        }
        let inv_dd2 = s.inv_dd2_global.unwrap_or_else(|| {
            let dd = s.criterion * r;
            1.0 / (dd * dd)
        });
        let best = if let Some(l) = &s.lattice {
            l.search(&s.padded, [i, j, k], r, inv_dd2, init, mode)
        } else {
            let b = s
                .eval_grid
                .patient_to_index(s.reference.grid().voxel_center([i, j, k]));
            search_general(&s.padded, &s.offsets, s.reach, b, r, inv_dd2, init, mode)
        };
        match out.as_deref_mut() {
            Some(out) => out[i] = tally.record_map(best, s.search_limit_gamma),
            None => tally.record_pass(best),
        }
    }
    tally
}

/// Prepared inputs of one evaluation.
struct Setup<'a> {
    reference: &'a Volume<f32>,
    mask: Option<&'a [bool]>,
    eval_grid: Grid,
    padded: Padded,
    offsets: Vec<Offset>,
    /// Largest `|delta_a|` of the offsets, per evaluated axis.
    reach: [f64; 3],
    lattice: Option<Lattice>,
    /// `1 / dD^2` for global gamma.
    inv_dd2_global: Option<f64>,
    criterion: f64,
    cutoff: f64,
    norm_dose: f64,
    search_limit_gamma: f64,
}

/// Per-row tallies.
#[derive(Default)]
struct RowTally {
    evaluated: usize,
    passed: usize,
    /// Map mode: voxels without evaluated dose within reach (gamma `+inf`).
    uncovered: usize,
    /// Map mode: voxels whose (stored) gamma exceeds `R_search / DTA`.
    limited: usize,
    /// Map mode: sum and maximum of the finite gammas.
    sum: f64,
    max: f64,
}

impl RowTally {
    /// Pass-rate mode: `best` is a `gamma^2` below [`PASS_LIMIT`] or not.
    fn record_pass(&mut self, best: f64) {
        self.evaluated += 1;
        self.passed += usize::from(best < PASS_LIMIT);
    }

    /// Map mode: tallies the minimum `gamma^2` and returns the gamma to
    /// store (a failing voxel is never stored as `<= 1` after rounding).
    fn record_map(&mut self, best: f64, search_limit_gamma: f64) -> f32 {
        self.evaluated += 1;
        if best.is_infinite() {
            self.uncovered += 1;
            return f32::INFINITY;
        }
        let g = best.sqrt();
        let pass = best <= 1.0;
        self.passed += usize::from(pass);
        self.sum += g;
        self.max = self.max.max(g);
        let mut g32 = g as f32;
        if !pass && g32 <= 1.0 {
            g32 = 1.0f32.next_up();
        }
        self.limited += usize::from(f64::from(g32) > search_limit_gamma);
        g32
    }
}

/// One search offset.
#[derive(Clone, Copy, Debug)]
struct Offset {
    /// `|m|^2 / N^2 = distance^2 / DTA^2`.
    r2: f64,
    /// Displacement in evaluated-grid index units.
    delta: [f64; 3],
}

/// The evaluated dose padded by one voxel on every side with the edge
/// values: trilinear interpolation in it (in `f64`) reproduces core's
/// sampling, which holds the edge value within half a voxel of the boundary.
struct Padded {
    data: Vec<f32>,
    dims: [usize; 3],
    sy: usize,
    sz: usize,
}

impl Padded {
    fn new(v: &Volume<f32>) -> Self {
        let dims = v.grid().dims();
        let [nx, ny, nz] = dims;
        let (px, py, pz) = (nx + 2, ny + 2, nz + 2);
        let src = v.as_slice();
        let mut data = vec![0.0f32; px * py * pz];
        for k in 0..pz {
            let sk = k.saturating_sub(1).min(nz - 1);
            for j in 0..py {
                let sj = j.saturating_sub(1).min(ny - 1);
                let row = &src[(sk * ny + sj) * nx..(sk * ny + sj + 1) * nx];
                let out = &mut data[(k * py + j) * px..(k * py + j + 1) * px];
                out[0] = row[0];
                out[px - 1] = row[nx - 1];
                out[1..=nx].copy_from_slice(row);
            }
        }
        Self {
            data,
            dims,
            sy: px,
            sz: px * py,
        }
    }

    /// Linear index in the padded array of the cell whose lower corner is
    /// the (unpadded) index `c` (each component in `-1..=n-1`).
    #[inline]
    fn base(&self, c: [i64; 3]) -> usize {
        (c[2] + 1) as usize * self.sz + (c[1] + 1) as usize * self.sy + (c[0] + 1) as usize
    }

    #[inline]
    fn corners(&self, base: usize) -> [f64; 8] {
        let d = &self.data;
        let (sy, sz) = (self.sy, self.sz);
        [
            d[base],
            d[base + 1],
            d[base + sy],
            d[base + sy + 1],
            d[base + sz],
            d[base + sz + 1],
            d[base + sz + sy],
            d[base + sz + sy + 1],
        ]
        .map(f64::from)
    }
}

/// Trilinear interpolation inside a cell, in the same order of operations as
/// core's `Volume::sample_linear`. Corners: x fastest, then y, then z.
#[inline]
fn trilerp(c: &[f64; 8], f: [f64; 3]) -> f64 {
    #[inline]
    fn lerp(a: f64, b: f64, t: f64) -> f64 {
        a + (b - a) * t
    }
    let c00 = lerp(c[0], c[1], f[0]);
    let c10 = lerp(c[2], c[3], f[0]);
    let c01 = lerp(c[4], c[5], f[0]);
    let c11 = lerp(c[6], c[7], f[0]);
    let c0 = lerp(c00, c10, f[1]);
    let c1 = lerp(c01, c11, f[1]);
    lerp(c0, c1, f[2])
}

/// Whether a continuous index lies inside the boundary box of an axis with
/// `n` voxels.
#[inline]
fn in_box(p: f64, n: usize) -> bool {
    p >= -0.5 - BOX_EPS && p <= n as f64 - 0.5 + BOX_EPS
}

/// Search for grids of different spacing or orientation: every offset is
/// placed and interpolated on its own.
fn search_general(
    padded: &Padded,
    offsets: &[Offset],
    reach: [f64; 3],
    b: [f64; 3],
    r: f64,
    inv_dd2: f64,
    init: f64,
    mode: Mode,
) -> f64 {
    let dims = padded.dims;
    // No offset reaches the evaluated grid's box: nothing to search.
    if (0..3).any(|a| {
        b[a] < -0.5 - reach[a] - BOX_EPS || b[a] > dims[a] as f64 - 0.5 + reach[a] + BOX_EPS
    }) {
        return init;
    }
    let mut best = init;
    for o in offsets {
        if o.r2 >= best {
            break;
        }
        let p = [b[0] + o.delta[0], b[1] + o.delta[1], b[2] + o.delta[2]];
        if !(in_box(p[0], dims[0]) && in_box(p[1], dims[1]) && in_box(p[2], dims[2])) {
            continue;
        }
        // Cell index in -1..=n-1 (the box check bounds it).
        let c = p.map(|x| x.floor() as i64);
        let c: [i64; 3] = std::array::from_fn(|a| c[a].clamp(-1, dims[a] as i64 - 1));
        let f: [f64; 3] = std::array::from_fn(|a| p[a] - c[a] as f64);
        let v = trilerp(&padded.corners(padded.base(c)), f);
        let diff = v - r;
        let g2 = o.r2 + diff * diff * inv_dd2;
        if g2 < best {
            best = g2;
            if mode == Mode::PassOnly {
                break;
            }
        }
    }
    best
}

/// Whether the evaluated grid has the reference grid's spacing and axes, so
/// that a reference voxel's offsets always fall at the same positions
/// within the evaluated cells.
fn same_lattice(reference: &Grid, evaluated: &Grid) -> bool {
    let (rs, es) = (reference.spacing_mm(), evaluated.spacing_mm());
    let (rd, ed) = (reference.direction(), evaluated.direction());
    (0..3).all(|a| (rs[a] - es[a]).abs() <= 1e-12 * rs[a])
        && (0..3).all(|a| (0..3).all(|c| (rd[a][c] - ed[a][c]).abs() <= 1e-12))
}

/// The offsets grouped by evaluated cell, for grids on the same lattice.
struct Lattice {
    cells: Vec<CellGroup>,
    points: Vec<CellPoint>,
}

/// The offsets that fall in one evaluated cell (relative to the voxel).
struct CellGroup {
    /// Cell lower corner relative to the voxel's own index.
    delta: [i64; 3],
    /// Smallest `r2` of its points.
    r2_min: f64,
    start: usize,
    end: usize,
}

/// One offset within its cell.
struct CellPoint {
    r2: f64,
    /// Interpolation weights (fractional position in the cell).
    f: [f64; 3],
}

impl Lattice {
    /// Groups `offsets` (sorted by distance) by cell; `t` is the evaluated
    /// continuous index of the reference voxel `(0, 0, 0)`.
    fn new(offsets: &[Offset], t: [f64; 3]) -> Self {
        use std::collections::HashMap;
        let mut groups: HashMap<[i64; 3], Vec<CellPoint>> = HashMap::new();
        for o in offsets {
            let u: [f64; 3] = std::array::from_fn(|a| t[a] + o.delta[a]);
            let c = u.map(|x| x.floor() as i64);
            let f: [f64; 3] = std::array::from_fn(|a| u[a] - c[a] as f64);
            groups.entry(c).or_default().push(CellPoint { r2: o.r2, f });
        }
        let mut keyed: Vec<([i64; 3], Vec<CellPoint>)> = groups.into_iter().collect();
        // Points keep their distance order; cells go by their nearest point.
        keyed.sort_by(|a, b| a.1[0].r2.total_cmp(&b.1[0].r2).then(a.0.cmp(&b.0)));
        let mut cells = Vec::with_capacity(keyed.len());
        let mut points = Vec::with_capacity(offsets.len());
        for (delta, pts) in keyed {
            let start = points.len();
            let r2_min = pts[0].r2;
            points.extend(pts);
            cells.push(CellGroup {
                delta,
                r2_min,
                start,
                end: points.len(),
            });
        }
        Self { cells, points }
    }

    /// The minimum `gamma^2` (or, in pass mode, any value below
    /// [`PASS_LIMIT`]) for reference voxel `v` with dose `r`.
    #[inline]
    fn search(
        &self,
        padded: &Padded,
        v: [usize; 3],
        r: f64,
        inv_dd2: f64,
        init: f64,
        mode: Mode,
    ) -> f64 {
        let dims = padded.dims.map(|n| n as i64);
        let v = v.map(|x| x as i64);
        let mut best = init;
        for cell in &self.cells {
            if cell.r2_min >= best {
                break;
            }
            let c = [
                v[0] + cell.delta[0],
                v[1] + cell.delta[1],
                v[2] + cell.delta[2],
            ];
            // Cells wholly outside the boundary box hold no candidate; the
            // outermost ones (lower corner -1 or n-1) only partly.
            let mut boundary = false;
            let mut outside = false;
            for a in 0..3 {
                if c[a] < -1 || c[a] > dims[a] - 1 {
                    outside = true;
                } else if c[a] == -1 || c[a] == dims[a] - 1 {
                    boundary = true;
                }
            }
            if outside {
                continue;
            }
            let corners = padded.corners(padded.base(c));
            let (mut lo, mut hi) = (corners[0], corners[0]);
            for &x in &corners[1..] {
                lo = lo.min(x);
                hi = hi.max(x);
            }
            let gap = (lo - r).max(r - hi).max(0.0);
            // Conservative by a relative 1e-12 for rounding in the lerps.
            if (cell.r2_min + gap * gap * inv_dd2) * (1.0 - 1e-12) >= best {
                continue;
            }
            for p in &self.points[cell.start..cell.end] {
                if p.r2 >= best {
                    break;
                }
                if boundary && !(0..3).all(|a| in_box(c[a] as f64 + p.f[a], dims[a] as usize)) {
                    continue;
                }
                let val = trilerp(&corners, p.f);
                let diff = val - r;
                let g2 = p.r2 + diff * diff * inv_dd2;
                if g2 < best {
                    best = g2;
                    if mode == Mode::PassOnly {
                        return best;
                    }
                }
            }
        }
        best
    }
}

/// A dose resampled onto another grid, with the number of target voxels
/// that fell outside the source grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResampledDose {
    /// The dose on the target grid (0 Gy outside the source grid).
    pub dose: Volume<f32>,
    /// Target voxels whose centre lies outside the source grid's boundary
    /// box (set to 0 Gy).
    pub outside_voxels: usize,
}

/// Resamples a dose onto `target` with core's trilinear sampling; voxels
/// outside the source grid get 0 Gy and are counted.
///
/// ```
/// use dosepaint_core::{Grid, Volume};
/// let fine = Grid::new([10, 10, 10], [1.0; 3], [0.0; 3])?;
/// let dose = Volume::from_fn(fine, |[i, _, _]| i as f32);
/// let coarse = Grid::new([6, 5, 5], [2.0; 3], [0.5, 0.5, 0.5])?;
/// let r = dosepaint_eval::resample_dose(&dose, &coarse)?;
/// assert!((r.dose.get([1, 0, 0]).unwrap() - 2.5).abs() < 1e-6);
/// assert_eq!(r.outside_voxels, 25); // the last column lies beyond x = 9.5 mm
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
///
/// # Errors
/// A NaN, infinite or negative source dose.
pub fn resample_dose(dose: &Volume<f32>, target: &Grid) -> Result<ResampledDose> {
    check_dose_volume(dose, "dose to resample")?;
    let mut out = dose.resample(target, Interpolation::Linear, f32::NAN);
    let mut outside = 0;
    for v in out.as_slice_mut() {
        if v.is_nan() {
            *v = 0.0;
            outside += 1;
        }
    }
    Ok(ResampledDose {
        dose: out,
        outside_voxels: outside,
    })
}

/// Serde form of a gamma map that survives JSON: `null` where not
/// evaluated, the uncovered voxels listed by linear index.
mod map_serde {
    use dosepaint_core::{Grid, Volume};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct MapSpec {
        grid: Grid,
        values: Vec<Option<f32>>,
        uncovered: Vec<u32>,
    }

    pub(super) fn serialize<S: Serializer>(map: &Volume<f32>, s: S) -> Result<S::Ok, S::Error> {
        let values = map
            .as_slice()
            .iter()
            .map(|&g| g.is_finite().then_some(g))
            .collect();
        let uncovered = map
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, g)| g.is_infinite())
            .map(|(n, _)| n as u32)
            .collect();
        MapSpec {
            grid: map.grid().clone(),
            values,
            uncovered,
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Volume<f32>, D::Error> {
        let spec = MapSpec::deserialize(d)?;
        let mut values: Vec<f32> = spec
            .values
            .into_iter()
            .map(|g| g.unwrap_or(f32::NAN))
            .collect();
        for n in spec.uncovered {
            let slot = values.get_mut(n as usize).ok_or_else(|| {
                serde::de::Error::custom(format!("uncovered voxel {n} is outside the gamma map"))
            })?;
            *slot = f32::INFINITY;
        }
        Volume::from_vec(spec.grid, values).map_err(serde::de::Error::custom)
    }
}
