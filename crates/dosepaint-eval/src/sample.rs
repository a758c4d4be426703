//! The dose values and voxel volumes of one structure, and the input checks
//! shared by the whole crate.

use dosepaint_core::{Grid, Structure, Volume};
use dosepaint_radiobio::{Geud, Weights};

use crate::histogram::Masses;
use crate::{Error, Result};

/// Voxel volumes of a [`DoseSample`]: all equal (whole voxels of one grid) or
/// one per voxel (fractional occupancy, or volumes given by the caller).
#[derive(Debug, Clone, PartialEq)]
enum VoxelVolumes {
    Uniform(f64),
    PerVoxel(Vec<f64>),
}

/// The doses (Gy) and volumes (cm^3) of the voxels of one structure: the
/// input of every DVH-based metric and of gEUD.
///
/// Build one from a dose [`Volume`] and a [`Structure`] on the same grid
/// ([`DoseSample::from_structure`]), from a fractional-occupancy map for
/// partial boundary voxels ([`DoseSample::from_occupancy`]), or from plain
/// slices ([`DoseSample::new`]). Doses must be finite and non-negative; the
/// first offending voxel is named in the error.
///
/// ```
/// use dosepaint_eval::DoseSample;
/// let s = DoseSample::new("PTV", vec![60.0, 70.0], vec![0.5, 1.5])?;
/// assert!((s.total_volume_cm3() - 2.0).abs() < 1e-12);
/// assert!((s.mean_gy() - 67.5).abs() < 1e-12); // volume-weighted
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DoseSample {
    name: String,
    doses_gy: Vec<f64>,
    volumes: VoxelVolumes,
    total_volume_cm3: f64,
    min_gy: f64,
    max_gy: f64,
    mean_gy: f64,
}

impl DoseSample {
    /// The doses of the voxels inside `structure` (whole voxels, each of the
    /// grid's voxel volume).
    ///
    /// # Errors
    /// [`Error::GridMismatch`] when the dose and structure grids differ,
    /// [`Error::Empty`] for an empty structure, [`Error::InvalidValue`] for a
    /// NaN, infinite or negative dose inside the structure.
    pub fn from_structure(dose: &Volume<f32>, structure: &Structure) -> Result<Self> {
        let context = format!("dose in structure \"{}\"", structure.name());
        ensure_same_grid(
            dose.grid(),
            structure.grid(),
            &format!("dose grid vs grid of structure \"{}\"", structure.name()),
        )?;
        let grid = dose.grid();
        let (doses, stats) = extract(structure.mask().as_slice(), dose.as_slice(), |n, v| {
            bad_voxel("dose", &context, grid, n, v, DOSE_REQUIREMENT)
        })?;
        if doses.is_empty() {
            return Err(Error::empty(
                format!("structure \"{}\"", structure.name()),
                "it holds no voxel, so no dose statistic is defined",
            ));
        }
        Ok(Self::with_stats(
            structure.name().to_string(),
            doses,
            VoxelVolumes::Uniform(grid.voxel_volume_cm3()),
            stats,
        ))
    }

    /// The doses of the voxels with a positive `occupancy` (the fraction of
    /// the voxel inside the structure, in `[0, 1]`), each weighted by its
    /// occupied volume `occupancy * voxel volume`.
    ///
    /// # Errors
    /// Grid mismatch, an occupancy outside `[0, 1]` or not finite, no voxel
    /// with a positive occupancy, or an invalid dose in an occupied voxel.
    pub fn from_occupancy(
        name: impl Into<String>,
        dose: &Volume<f32>,
        occupancy: &Volume<f32>,
    ) -> Result<Self> {
        let name = name.into();
        ensure_same_grid(
            dose.grid(),
            occupancy.grid(),
            &format!("dose grid vs occupancy grid of \"{name}\""),
        )?;
        let grid = dose.grid();
        let voxel = grid.voxel_volume_cm3();
        let context = format!("occupancy of \"{name}\"");
        let dose_context = format!("dose in \"{name}\"");
        let mut doses = Vec::new();
        let mut volumes = Vec::new();
        for (n, (&f, &v)) in occupancy.as_slice().iter().zip(dose.as_slice()).enumerate() {
            let f = f64::from(f);
            if !(0.0..=1.0).contains(&f) {
                return Err(bad_voxel(
                    "occupancy",
                    &context,
                    grid,
                    n,
                    f,
                    "a fraction in [0, 1]",
                ));
            }
            if f > 0.0 {
                let v = f64::from(v);
                if !dose_ok(v) {
                    return Err(bad_voxel(
                        "dose",
                        &dose_context,
                        grid,
                        n,
                        v,
                        DOSE_REQUIREMENT,
                    ));
                }
                doses.push(v);
                volumes.push(f * voxel);
            }
        }
        if doses.is_empty() {
            return Err(Error::empty(
                format!("structure \"{name}\""),
                "no voxel has a positive occupancy",
            ));
        }
        Ok(Self::build(name, doses, VoxelVolumes::PerVoxel(volumes)))
    }

    /// A sample from explicit per-voxel doses (Gy) and volumes (cm^3).
    /// Voxels of zero volume are allowed and carry no weight.
    ///
    /// # Errors
    /// Different lengths, no voxel, an invalid dose or volume (NaN, infinite,
    /// negative; the index is named), or a total volume of zero.
    pub fn new(name: impl Into<String>, doses_gy: Vec<f64>, volumes_cm3: Vec<f64>) -> Result<Self> {
        let name = name.into();
        if doses_gy.len() != volumes_cm3.len() {
            return Err(Error::LengthMismatch {
                context: format!("doses and volumes of \"{name}\""),
                expected: doses_gy.len(),
                found: volumes_cm3.len(),
            });
        }
        check_slice(&name, &doses_gy, &volumes_cm3)?;
        let total: f64 = volumes_cm3.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::empty(
                format!("structure \"{name}\""),
                format!("its voxel volumes sum to {total} cm^3"),
            ));
        }
        Ok(Self::build(
            name,
            doses_gy,
            VoxelVolumes::PerVoxel(volumes_cm3),
        ))
    }

    /// A sample of whole voxels that all have the volume `voxel_volume_cm3`.
    ///
    /// # Errors
    /// No voxel, an invalid dose, or a voxel volume that is not positive and
    /// finite.
    pub fn uniform(
        name: impl Into<String>,
        doses_gy: Vec<f64>,
        voxel_volume_cm3: f64,
    ) -> Result<Self> {
        let name = name.into();
        if !(voxel_volume_cm3.is_finite() && voxel_volume_cm3 > 0.0) {
            return Err(Error::invalid(
                "voxel volume",
                format!("{voxel_volume_cm3} cm^3 must be positive and finite"),
            ));
        }
        check_slice(&name, &doses_gy, &[])?;
        Ok(Self::build(
            name,
            doses_gy,
            VoxelVolumes::Uniform(voxel_volume_cm3),
        ))
    }

    /// Statistics of validated data (at least one voxel of positive volume),
    /// reduced in parallel over fixed chunks combined in order.
    fn build(name: String, doses_gy: Vec<f64>, volumes: VoxelVolumes) -> Self {
        use rayon::prelude::*;
        // (min, max, sum of v d, sum of v) over voxels of positive volume;
        // uniform volumes count as 1.
        let part = |d: &[f64], v: Option<&[f64]>| {
            let (mut min, mut max, mut sum, mut total) = (f64::INFINITY, 0.0f64, 0.0, 0.0);
            match v {
                None => {
                    for &x in d {
                        min = min.min(x);
                        max = max.max(x);
                        sum += x;
                    }
                    total = d.len() as f64;
                }
                Some(v) => {
                    for (&x, &w) in d.iter().zip(v) {
                        if w > 0.0 {
                            min = min.min(x);
                            max = max.max(x);
                            sum += x * w;
                            total += w;
                        }
                    }
                }
            }
            (min, max, sum, total)
        };
        let parts: Vec<Partial> = match &volumes {
            VoxelVolumes::Uniform(_) => doses_gy.par_chunks(CHUNK).map(|d| part(d, None)).collect(),
            VoxelVolumes::PerVoxel(v) => doses_gy
                .par_chunks(CHUNK)
                .zip(v.par_chunks(CHUNK))
                .map(|(d, v)| part(d, Some(v)))
                .collect(),
        };
        let stats = combine(parts);
        Self::with_stats(name, doses_gy, volumes, stats)
    }

    /// A sample from validated data and its statistics (for uniform volumes,
    /// with every voxel counted as volume 1).
    fn with_stats(name: String, doses_gy: Vec<f64>, volumes: VoxelVolumes, stats: Partial) -> Self {
        let (min, max, mut sum, mut total) = stats;
        if let VoxelVolumes::Uniform(v) = volumes {
            total *= v;
            sum *= v;
        }
        debug_assert!(total > 0.0);
        let mean = (sum / total).clamp(min, max);
        Self {
            name,
            doses_gy,
            volumes,
            total_volume_cm3: total,
            min_gy: min,
            max_gy: max,
            mean_gy: mean,
        }
    }

    /// The structure's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of voxels (including any of zero volume).
    pub fn len(&self) -> usize {
        self.doses_gy.len()
    }

    /// Always `false`: a sample holds at least one voxel.
    pub fn is_empty(&self) -> bool {
        self.doses_gy.is_empty()
    }

    /// The voxel doses, Gy.
    pub fn doses_gy(&self) -> &[f64] {
        &self.doses_gy
    }

    /// The volume of voxel `n`, cm^3.
    ///
    /// # Panics
    /// If `n >= self.len()`.
    pub fn volume_cm3(&self, n: usize) -> f64 {
        assert!(n < self.doses_gy.len(), "voxel {n} out of range");
        match &self.volumes {
            VoxelVolumes::Uniform(v) => *v,
            VoxelVolumes::PerVoxel(v) => v[n],
        }
    }

    /// Total volume, cm^3.
    pub fn total_volume_cm3(&self) -> f64 {
        self.total_volume_cm3
    }

    /// Minimum dose (over voxels of positive volume), Gy.
    pub fn min_gy(&self) -> f64 {
        self.min_gy
    }

    /// Maximum dose (over voxels of positive volume), Gy.
    pub fn max_gy(&self) -> f64 {
        self.max_gy
    }

    /// Volume-weighted mean dose `sum v_i D_i / sum v_i`, Gy.
    pub fn mean_gy(&self) -> f64 {
        self.mean_gy
    }

    /// Niemierko's generalised equivalent uniform dose
    /// `gEUD = (sum_i v_i D_i^a)^(1/a)` with relative volumes `v_i`, computed
    /// by `dosepaint_radiobio::Geud` from the voxel doses (not from the
    /// binned DVH).
    ///
    /// # Errors
    /// A non-finite `a`.
    pub fn geud_gy(&self, a: f64) -> Result<f64> {
        let model = Geud::new(a)?;
        let weights = match &self.volumes {
            VoxelVolumes::Uniform(_) => Weights::Uniform,
            VoxelVolumes::PerVoxel(v) => Weights::Relative(v),
        };
        Ok(model.value(&self.doses_gy, weights)?)
    }

    /// The voxel volumes as histogram masses.
    pub(crate) fn masses(&self) -> Masses<'_> {
        match &self.volumes {
            VoxelVolumes::Uniform(v) => Masses::Uniform(*v),
            VoxelVolumes::PerVoxel(v) => Masses::PerValue(v),
        }
    }
}

pub(crate) const DOSE_REQUIREMENT: &str = "finite and >= 0 Gy";

/// A valid dose: finite and non-negative (NaN fails).
#[inline]
pub(crate) fn dose_ok(d: f64) -> bool {
    (0.0..f64::INFINITY).contains(&d)
}

fn check_slice(name: &str, doses: &[f64], volumes: &[f64]) -> Result<()> {
    if doses.is_empty() {
        return Err(Error::empty(
            format!("structure \"{name}\""),
            "it holds no voxel, so no dose statistic is defined",
        ));
    }
    if let Some(n) = doses.iter().position(|&d| !dose_ok(d)) {
        return Err(Error::InvalidValue {
            quantity: "dose",
            context: format!("doses of \"{name}\""),
            location: format!("element {n}"),
            value: doses[n],
            requirement: DOSE_REQUIREMENT,
        });
    }
    if let Some(n) = volumes.iter().position(|&v| !dose_ok(v)) {
        return Err(Error::InvalidValue {
            quantity: "voxel volume",
            context: format!("volumes of \"{name}\""),
            location: format!("element {n}"),
            value: volumes[n],
            requirement: "finite and >= 0 cm^3",
        });
    }
    Ok(())
}

/// An [`Error::InvalidValue`] at linear voxel index `n` of `grid`.
pub(crate) fn bad_voxel(
    quantity: &'static str,
    context: &str,
    grid: &Grid,
    n: usize,
    value: f64,
    requirement: &'static str,
) -> Error {
    Error::InvalidValue {
        quantity,
        context: context.to_string(),
        location: {
            let [i, j, k] = grid.voxel_index(n);
            format!("voxel (i, j, k) = ({i}, {j}, {k})")
        },
        value,
        requirement,
    }
}

/// Voxels per work item of the parallel loops. The partition depends only
/// on the input length and partial results are combined in order, so results
/// are the same for any number of threads.
const CHUNK: usize = 1 << 16;

/// Partial statistics `(min, max, sum of v d, sum of v)` of a run of voxels.
type Partial = (f64, f64, f64, f64);

fn combine(parts: impl IntoIterator<Item = Partial>) -> Partial {
    let (mut min, mut max, mut sum, mut total) = (f64::INFINITY, 0.0f64, 0.0, 0.0);
    for (a, b, c, d) in parts {
        min = min.min(a);
        max = max.max(b);
        sum += c;
        total += d;
    }
    (min, max, sum, total)
}

/// The doses (as `f64`) of the voxels where `mask` is set, in memory order,
/// with their statistics (volumes counted as 1), extracted in parallel into
/// one allocation; the first invalid dose (lowest index) is reported through
/// `bad`.
fn extract(
    mask: &[bool],
    dose: &[f32],
    bad: impl Fn(usize, f64) -> Error + Sync,
) -> Result<(Vec<f64>, Partial)> {
    use rayon::prelude::*;
    let counts: Vec<usize> = mask
        .par_chunks(CHUNK)
        .map(|m| m.iter().filter(|&&b| b).count())
        .collect();
    let mut out = vec![0.0; counts.iter().sum()];
    let mut slices = Vec::with_capacity(counts.len());
    let mut rest = out.as_mut_slice();
    for &c in &counts {
        let (head, tail) = rest.split_at_mut(c);
        slices.push(head);
        rest = tail;
    }
    let parts: Vec<Result<Partial>> = slices
        .into_par_iter()
        .zip(mask.par_chunks(CHUNK).zip(dose.par_chunks(CHUNK)))
        .enumerate()
        .map(|(c, (o, (m, d)))| {
            let (mut min, mut max, mut sum) = (f64::INFINITY, 0.0f64, 0.0);
            let mut next = o.iter_mut();
            for (j, (&inside, &v)) in m.iter().zip(d).enumerate() {
                if inside {
                    let v = f64::from(v);
                    if !dose_ok(v) {
                        return Err(bad(c * CHUNK + j, v));
                    }
                    min = min.min(v);
                    max = max.max(v);
                    sum += v;
                    *next.next().expect("slot counted for every voxel inside") = v;
                }
            }
            Ok((min, max, sum, o.len() as f64))
        })
        .collect();
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((out, combine(parts)))
}

/// `Ok` when every value of a dose volume is finite and non-negative.
pub(crate) fn check_dose_volume(dose: &Volume<f32>, context: &str) -> Result<()> {
    match dose.as_slice().iter().position(|&d| !dose_ok(f64::from(d))) {
        None => Ok(()),
        Some(n) => Err(bad_voxel(
            "dose",
            context,
            dose.grid(),
            n,
            f64::from(dose.as_slice()[n]),
            DOSE_REQUIREMENT,
        )),
    }
}

/// `Ok` when the grids agree within core's tolerance, else
/// [`Error::GridMismatch`] naming both grids.
pub(crate) fn ensure_same_grid(a: &Grid, b: &Grid, context: &str) -> Result<()> {
    a.ensure_same(b, context).map_err(|e| match e {
        dosepaint_core::Error::GridMismatch { context } => Error::GridMismatch { context },
        e => Error::Core(e),
    })
}
