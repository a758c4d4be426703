//! Dose-painting quality: how closely a plan follows its voxel-wise
//! prescription (Q, QF, QVH), for the whole prescribed target and split by
//! boost level.
//!
//! Definitions (`shared/reference/dose_painting.md`, after the Ghent group:
//! Vanderstraeten et al. 2006, Duprez et al. 2011): per prescribed voxel
//! `Q_i = D_plan,i / D_presc,i`; the quality factor `QF = (1/N) sum |Q_i - 1|`
//! over the `N` prescribed voxels; the quality-volume histogram (QVH) is the
//! fraction of the target volume with `Q >= q`.

use std::collections::{BTreeSet, VecDeque};

use dosepaint_core::{Grid, Prescription, Structure, StructureRole, Volume};
use serde::{Deserialize, Serialize};

use crate::histogram::{Histogram, Masses};
use crate::sample::{DOSE_REQUIREMENT, bad_voxel, dose_ok, ensure_same_grid};
use crate::{DoseSample, Dvh, Error, Result};

/// Settings of a dose-painting evaluation (validate with
/// [`PaintingParams::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaintingParams {
    /// Half-width of the acceptance band around `Q = 1` (0.05: within
    /// +-5 %, i.e. `0.95 <= Q <= 1.05`).
    pub tolerance: f64,
    /// Bin width of the quality-volume histogram (in units of Q).
    pub qvh_bin_width: f64,
    /// Bin width of the DVHs behind D95 and D98, Gy.
    pub dvh_bin_width_gy: f64,
    /// gEUD exponent for the cold-spot-sensitive gEUD of each level
    /// (about -10 for tumours).
    pub geud_a: f64,
}

impl Default for PaintingParams {
    fn default() -> Self {
        Self {
            tolerance: 0.05,
            qvh_bin_width: 0.001,
            dvh_bin_width_gy: crate::DEFAULT_BIN_WIDTH_GY,
            geud_a: -10.0,
        }
    }
}

impl PaintingParams {
    /// Validates the settings.
    ///
    /// # Errors
    /// A tolerance outside `(0, 1)`, a bin width that is not positive and
    /// finite, or a non-finite gEUD exponent.
    pub fn check(self) -> Result<PaintingAnalysis> {
        if !(self.tolerance > 0.0 && self.tolerance < 1.0) {
            return Err(Error::invalid(
                "dose-painting tolerance",
                format!("{} must lie in (0, 1), e.g. 0.05 for +-5 %", self.tolerance),
            ));
        }
        if !(self.qvh_bin_width.is_finite() && self.qvh_bin_width > 0.0) {
            return Err(Error::invalid(
                "QVH bin width",
                format!("{} must be positive and finite", self.qvh_bin_width),
            ));
        }
        if !(self.dvh_bin_width_gy.is_finite() && self.dvh_bin_width_gy > 0.0) {
            return Err(Error::invalid(
                "DVH bin width",
                format!("{} Gy must be positive and finite", self.dvh_bin_width_gy),
            ));
        }
        if !self.geud_a.is_finite() {
            return Err(Error::invalid(
                "gEUD exponent",
                format!("{} is not finite", self.geud_a),
            ));
        }
        Ok(PaintingAnalysis { params: self })
    }
}

/// A validated dose-painting evaluation; see [`PaintingAnalysis::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaintingAnalysis {
    params: PaintingParams,
}

/// The quality-volume histogram: fraction of the target volume with
/// `Q >= q`. Exact at the bin edges `q = k w`; between edges, and for
/// [`Qvh::q_at_fraction`], the same piecewise-linear reading as the DVH
/// (see [`Dvh`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qvh {
    /// Voxel counts per bin of Q.
    histogram: Histogram,
}

impl Qvh {
    /// Bin width in Q.
    pub fn bin_width(&self) -> f64 {
        self.histogram.bin_width()
    }

    /// The edges `q_k = k w`, `k = 0..=n_bins`.
    pub fn edges(&self) -> Vec<f64> {
        self.histogram.edges()
    }

    /// Number of target voxels.
    pub fn n_voxels(&self) -> usize {
        self.histogram.total().round() as usize
    }

    /// Fraction of the target with `Q >= q_k` at each edge (first entry 1).
    pub fn cumulative(&self) -> Vec<f64> {
        let n = self.histogram.total();
        self.histogram.cumulative().iter().map(|c| c / n).collect()
    }

    /// Fraction of the target in each bin.
    pub fn differential(&self) -> Vec<f64> {
        let n = self.histogram.total();
        self.histogram
            .differential()
            .iter()
            .map(|c| c / n)
            .collect()
    }

    /// Fraction of the target with `Q >= q`.
    pub fn fraction_at_least(&self, q: f64) -> f64 {
        if q.is_nan() {
            return f64::NAN;
        }
        self.histogram.mass_at_or_above(q) / self.histogram.total()
    }

    /// The largest `q` such that at least `fraction` of the target has
    /// `Q >= q` (e.g. `q_at_fraction(0.95)`, the "Q95"); `None` outside
    /// `[0, 1]`.
    pub fn q_at_fraction(&self, fraction: f64) -> Option<f64> {
        (0.0..=1.0)
            .contains(&fraction)
            .then(|| self.histogram.quantile(fraction * self.histogram.total()))
    }

    /// Smallest Q in the target.
    pub fn min_q(&self) -> f64 {
        self.histogram.min()
    }

    /// Largest Q in the target.
    pub fn max_q(&self) -> f64 {
        self.histogram.max()
    }
}

/// Dose-painting quality of one region (the whole prescribed target or one
/// boost level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegionQuality {
    /// Region name (`"prescribed target"` or the level structure's name).
    pub name: String,
    /// Number of prescribed voxels in the region.
    pub n_voxels: usize,
    /// Their volume, cm^3.
    pub volume_cm3: f64,
    /// Voxels of a level structure that have no prescription (target dose
    /// 0) and were therefore left out (always 0 for the whole target).
    pub unprescribed_voxels: usize,
    /// Mean prescribed dose, Gy.
    pub mean_prescribed_gy: f64,
    /// Mean planned dose, Gy.
    pub mean_dose_gy: f64,
    /// Quality factor `QF = mean |Q - 1|`.
    pub quality_factor: f64,
    /// Mean Q.
    pub mean_q: f64,
    /// Smallest Q.
    pub min_q: f64,
    /// Largest Q.
    pub max_q: f64,
    /// Fraction of voxels with `1 - tol <= Q <= 1 + tol`.
    pub within_tolerance: f64,
    /// Fraction of voxels with `Q < 1 - tol` (cold).
    pub cold_fraction: f64,
    /// Fraction of voxels with `Q > 1 + tol` (hot).
    pub hot_fraction: f64,
    /// Volume of the cold voxels, cm^3.
    pub cold_volume_cm3: f64,
    /// Volume of the largest face-connected (6-neighbour) cluster of cold
    /// voxels within the region, cm^3: one large cold spot costs more
    /// control than scattered cold voxels.
    pub largest_cold_cluster_cm3: f64,
    /// Near-minimum planned dose D98%, Gy.
    pub d98_gy: f64,
    /// Planned dose D95%, Gy.
    pub d95_gy: f64,
    /// gEUD of the planned dose with the exponent `geud_a`, Gy.
    pub geud_gy: f64,
    /// The gEUD exponent used.
    pub geud_a: f64,
    /// The quality-volume histogram.
    pub qvh: Qvh,
}

/// Dose-painting quality of a plan: the whole prescribed target and each
/// boost level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PaintingReport {
    /// The tolerance used (`0.05` for +-5 %).
    pub tolerance: f64,
    /// All prescribed voxels (prescription > 0).
    pub target: RegionQuality,
    /// One entry per level structure, in the order given.
    pub levels: Vec<RegionQuality>,
}

/// Per-voxel `Q = planned / prescribed` dose on the prescription grid;
/// `NaN` where nothing is prescribed.
///
/// # Errors
/// Grid mismatch, or a planned dose that is NaN, infinite or negative in a
/// prescribed voxel.
pub fn q_map(dose: &Volume<f32>, prescription: &Prescription) -> Result<Volume<f32>> {
    check_inputs(dose, prescription)?;
    dose.zip_map(prescription.target_gy(), |&d, &p| {
        if p > 0.0 {
            (f64::from(d) / f64::from(p)) as f32
        } else {
            f32::NAN
        }
    })
    .map_err(Error::from)
}

fn check_inputs(dose: &Volume<f32>, prescription: &Prescription) -> Result<()> {
    ensure_same_grid(
        dose.grid(),
        prescription.grid(),
        "planned dose grid vs prescription grid",
    )?;
    let rx = prescription.target_gy().as_slice();
    for (n, (&d, &p)) in dose.as_slice().iter().zip(rx).enumerate() {
        if p > 0.0 && !dose_ok(f64::from(d)) {
            return Err(bad_voxel(
                "dose",
                "planned dose (prescribed region)",
                dose.grid(),
                n,
                f64::from(d),
                DOSE_REQUIREMENT,
            ));
        }
    }
    Ok(())
}

impl PaintingAnalysis {
    /// The settings.
    pub fn params(&self) -> &PaintingParams {
        &self.params
    }

    /// Evaluates a planned `dose` against `prescription` (same grid) for
    /// the whole prescribed target and for each structure of `levels` (e.g.
    /// the boost subvolumes of a dose-painting-by-contours plan, or
    /// [`prescription_levels`]); a level's voxels without prescription are
    /// counted in [`RegionQuality::unprescribed_voxels`] and left out.
    ///
    /// ```
    /// use dosepaint_core::{Grid, Prescription, Provenance, Volume};
    /// use dosepaint_eval::PaintingParams;
    /// let grid = Grid::new([4, 1, 1], [5.0; 3], [0.0; 3])?;
    /// let rx = Prescription::new(
    ///     Volume::from_vec(grid.clone(), vec![70.0f32, 70.0, 84.0, 84.0])?, 35, Provenance::default())?;
    /// let dose = Volume::from_vec(grid, vec![70.0f32, 63.0, 84.0, 88.2])?;
    /// let report = PaintingParams::default().check()?.evaluate(&dose, &rx, &[])?;
    /// // Q = 1, 0.9, 1, 1.05: QF = (0 + 0.1 + 0 + 0.05) / 4.
    /// assert!((report.target.quality_factor - 0.0375).abs() < 1e-6);
    /// assert!((report.target.within_tolerance - 0.75).abs() < 1e-12);
    /// assert!((report.target.cold_fraction - 0.25).abs() < 1e-12);
    /// # Ok::<(), dosepaint_eval::Error>(())
    /// ```
    ///
    /// # Errors
    /// Grid mismatch (dose, prescription, levels), an invalid planned dose
    /// in a prescribed voxel, a level without prescribed voxels, or a QVH/DVH
    /// bin width too fine for the data.
    pub fn evaluate(
        &self,
        dose: &Volume<f32>,
        prescription: &Prescription,
        levels: &[Structure],
    ) -> Result<PaintingReport> {
        check_inputs(dose, prescription)?;
        for level in levels {
            ensure_same_grid(
                prescription.grid(),
                level.grid(),
                &format!("prescription grid vs grid of level \"{}\"", level.name()),
            )?;
        }
        let rx = prescription.target_gy().as_slice();
        let all: Vec<usize> = (0..rx.len()).filter(|&n| rx[n] > 0.0).collect();
        let target = self.region("prescribed target", &all, 0, dose, prescription)?;
        let levels = levels
            .iter()
            .map(|level| {
                let mask = level.mask().as_slice();
                let inside: Vec<usize> = (0..rx.len()).filter(|&n| mask[n]).collect();
                let prescribed: Vec<usize> =
                    inside.iter().copied().filter(|&n| rx[n] > 0.0).collect();
                if prescribed.is_empty() {
                    return Err(Error::empty(
                        format!("dose-painting level \"{}\"", level.name()),
                        format!("none of its {} voxels has a prescribed dose", inside.len()),
                    ));
                }
                let unprescribed = inside.len() - prescribed.len();
                self.region(level.name(), &prescribed, unprescribed, dose, prescription)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PaintingReport {
            tolerance: self.params.tolerance,
            target,
            levels,
        })
    }

    /// Quality of the prescribed voxels `voxels` (linear indices, ascending).
    fn region(
        &self,
        name: &str,
        voxels: &[usize],
        unprescribed: usize,
        dose: &Volume<f32>,
        prescription: &Prescription,
    ) -> Result<RegionQuality> {
        let tol = self.params.tolerance;
        let grid = dose.grid();
        let d = dose.as_slice();
        let rx = prescription.target_gy().as_slice();
        let n = voxels.len() as f64;
        let q: Vec<f64> = voxels
            .iter()
            .map(|&v| f64::from(d[v]) / f64::from(rx[v]))
            .collect();
        let (mut sum_q, mut sum_dev, mut qmin, mut qmax) = (0.0, 0.0, f64::INFINITY, 0.0f64);
        let (mut within, mut cold, mut hot) = (0usize, 0usize, 0usize);
        let (lo, hi) = (1.0 - tol, 1.0 + tol);
        for &qi in &q {
            sum_q += qi;
            sum_dev += (qi - 1.0).abs();
            qmin = qmin.min(qi);
            qmax = qmax.max(qi);
            if qi < lo {
                cold += 1;
            } else if qi > hi {
                hot += 1;
            } else {
                within += 1;
            }
        }
        let histogram = Histogram::build(
            self.params.qvh_bin_width,
            qmin,
            qmax,
            "QVH",
            &q,
            Masses::Uniform(1.0),
        )?;
        let cold_voxels: Vec<usize> = voxels
            .iter()
            .zip(&q)
            .filter(|(_, qi)| **qi < lo)
            .map(|(&v, _)| v)
            .collect();
        let largest_cluster = largest_cluster(grid, &cold_voxels);
        let voxel_cm3 = grid.voxel_volume_cm3();
        let doses: Vec<f64> = voxels.iter().map(|&v| f64::from(d[v])).collect();
        let mean_prescribed = voxels.iter().map(|&v| f64::from(rx[v])).sum::<f64>() / n;
        let sample = DoseSample::uniform(name, doses, voxel_cm3)?;
        let dvh = Dvh::new(&sample, self.params.dvh_bin_width_gy)?;
        Ok(RegionQuality {
            name: name.to_string(),
            n_voxels: voxels.len(),
            volume_cm3: n * voxel_cm3,
            unprescribed_voxels: unprescribed,
            mean_prescribed_gy: mean_prescribed,
            mean_dose_gy: sample.mean_gy(),
            quality_factor: sum_dev / n,
            mean_q: sum_q / n,
            min_q: qmin,
            max_q: qmax,
            within_tolerance: within as f64 / n,
            cold_fraction: cold as f64 / n,
            hot_fraction: hot as f64 / n,
            cold_volume_cm3: cold as f64 * voxel_cm3,
            largest_cold_cluster_cm3: largest_cluster as f64 * voxel_cm3,
            d98_gy: dvh.d98_gy(),
            d95_gy: dvh.d95_gy(),
            geud_gy: sample.geud_gy(self.params.geud_a)?,
            geud_a: self.params.geud_a,
            qvh: Qvh { histogram },
        })
    }
}

/// Size (voxels) of the largest face-connected cluster among `voxels`
/// (linear indices on `grid`).
fn largest_cluster(grid: &Grid, voxels: &[usize]) -> usize {
    if voxels.is_empty() {
        return 0;
    }
    let [nx, ny, nz] = grid.dims();
    let mut member = vec![false; grid.n_voxels()];
    for &v in voxels {
        member[v] = true;
    }
    let mut largest = 0;
    let mut queue = VecDeque::new();
    for &seed in voxels {
        if !member[seed] {
            continue;
        }
        member[seed] = false;
        queue.push_back(seed);
        let mut size = 0;
        while let Some(v) = queue.pop_front() {
            size += 1;
            let [i, j, k] = grid.voxel_index(v);
            let mut visit = |w: usize| {
                if member[w] {
                    member[w] = false;
                    queue.push_back(w);
                }
            };
            if i > 0 {
                visit(v - 1);
            }
            if i + 1 < nx {
                visit(v + 1);
            }
            if j > 0 {
                visit(v - nx);
            }
            if j + 1 < ny {
                visit(v + nx);
            }
            if k > 0 {
                visit(v - nx * ny);
            }
            if k + 1 < nz {
                visit(v + nx * ny);
            }
        }
        largest = largest.max(size);
    }
    largest
}

/// Most distinct prescription levels [`prescription_levels`] will split.
pub const MAX_LEVELS: usize = 32;

/// One structure per distinct prescribed dose (dose painting by contours /
/// simultaneous integrated boost), named like `"70 Gy"` and ordered by dose.
///
/// ```
/// use dosepaint_core::{Grid, Prescription, Provenance, Volume};
/// let grid = Grid::new([3, 1, 1], [5.0; 3], [0.0; 3])?;
/// let rx = Prescription::new(
///     Volume::from_vec(grid, vec![0.0f32, 70.0, 84.0])?, 35, Provenance::default())?;
/// let levels = dosepaint_eval::prescription_levels(&rx)?;
/// assert_eq!(levels.len(), 2);
/// assert_eq!(levels[1].name(), "84 Gy");
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
///
/// # Errors
/// More than [`MAX_LEVELS`] distinct prescribed doses (a continuous
/// dose-painting-by-numbers map has no levels: pass level structures
/// instead).
pub fn prescription_levels(prescription: &Prescription) -> Result<Vec<Structure>> {
    let rx = prescription.target_gy();
    let mut levels: BTreeSet<u32> = BTreeSet::new();
    for &p in rx.as_slice() {
        if p > 0.0 {
            levels.insert(p.to_bits());
            if levels.len() > MAX_LEVELS {
                return Err(Error::invalid(
                    "prescription levels",
                    format!(
                        "the prescription has more than {MAX_LEVELS} distinct doses (a continuous map); pass level structures instead"
                    ),
                ));
            }
        }
    }
    // Positive f32 bit patterns sort like the values.
    levels
        .iter()
        .map(|&bits| {
            let level = f32::from_bits(bits);
            let mask = rx.map(|&p| p.to_bits() == bits);
            Structure::new(format!("{level} Gy"), StructureRole::Target, mask).map_err(Error::from)
        })
        .collect()
}
