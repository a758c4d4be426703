//! Per-voxel inputs (weights, maps that may be uniform) and the chunked,
//! deterministic parallel loop shared by the whole-distribution routines.

use crate::error::{Error, Result};

/// Number of voxels per work item of the parallel loops.
///
/// The partition into chunks depends only on the number of voxels, never on the
/// number of threads, and partial sums are combined in chunk order: results are
/// bit-for-bit identical for any thread count.
pub(crate) const CHUNK: usize = 4096;

/// Relative volumes (weights) of the voxels of a structure.
///
/// Weights must be finite and non-negative, with a positive sum; they are
/// normalised internally (`v_i = w_i / sum_j w_j`), so voxel counts, cm^3 or
/// fractions of the organ all work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weights<'a> {
    /// Every voxel has the same relative volume.
    Uniform,
    /// One weight per voxel (same length as the dose slice).
    Relative(&'a [f64]),
}

impl<'a> From<&'a [f64]> for Weights<'a> {
    fn from(w: &'a [f64]) -> Self {
        Weights::Relative(w)
    }
}

impl<'a> From<&'a Vec<f64>> for Weights<'a> {
    fn from(w: &'a Vec<f64>) -> Self {
        Weights::Relative(w.as_slice())
    }
}

impl<'a, const N: usize> From<&'a [f64; N]> for Weights<'a> {
    fn from(w: &'a [f64; N]) -> Self {
        Weights::Relative(w.as_slice())
    }
}

impl Weights<'_> {
    /// Check the length against the number of voxels.
    pub(crate) fn check_len(&self, n: usize) -> Result<()> {
        match self {
            Weights::Uniform => Ok(()),
            Weights::Relative(w) => check_len("weights", n, w.len()),
        }
    }
}

/// A per-voxel quantity that is either the same everywhere or given voxel by voxel
/// (a clonogen density map from ADC, an alpha map from FMISO, an alpha/beta map...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VoxelValues<'a> {
    /// The same value in every voxel.
    Uniform(f64),
    /// One value per voxel.
    PerVoxel(&'a [f64]),
}

impl From<f64> for VoxelValues<'_> {
    fn from(v: f64) -> Self {
        VoxelValues::Uniform(v)
    }
}

impl<'a> From<&'a [f64]> for VoxelValues<'a> {
    fn from(v: &'a [f64]) -> Self {
        VoxelValues::PerVoxel(v)
    }
}

impl<'a> From<&'a Vec<f64>> for VoxelValues<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        VoxelValues::PerVoxel(v.as_slice())
    }
}

impl<'a, const N: usize> From<&'a [f64; N]> for VoxelValues<'a> {
    fn from(v: &'a [f64; N]) -> Self {
        VoxelValues::PerVoxel(v.as_slice())
    }
}

impl VoxelValues<'_> {
    /// Validate every value with `ok`, and the length against `n`.
    pub(crate) fn validate(
        &self,
        quantity: &'static str,
        n: usize,
        requirement: &'static str,
        ok: impl Fn(f64) -> bool,
    ) -> Result<()> {
        match *self {
            VoxelValues::Uniform(v) => {
                if ok(v) {
                    Ok(())
                } else {
                    Err(Error::InvalidParameter {
                        name: quantity,
                        value: v,
                        requirement,
                    })
                }
            }
            VoxelValues::PerVoxel(values) => {
                check_len(quantity, n, values.len())?;
                match values.iter().position(|&v| !ok(v)) {
                    None => Ok(()),
                    Some(index) => Err(Error::InvalidVoxelValue {
                        quantity,
                        index,
                        value: values[index],
                        requirement,
                    }),
                }
            }
        }
    }

    /// The value at voxel `i`.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> f64 {
        match self {
            VoxelValues::Uniform(v) => *v,
            VoxelValues::PerVoxel(values) => values[i],
        }
    }

    /// An owned copy, mapped through `f`.
    pub(crate) fn to_field(self, f: impl Fn(f64) -> f64) -> Field {
        match self {
            VoxelValues::Uniform(v) => Field::Uniform(f(v)),
            VoxelValues::PerVoxel(values) => {
                Field::PerVoxel(values.iter().map(|&v| f(v)).collect())
            }
        }
    }
}

/// An owned per-voxel field, uniform or voxel by voxel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Uniform(f64),
    PerVoxel(Vec<f64>),
}

impl Field {
    #[inline]
    pub(crate) fn at(&self, i: usize) -> f64 {
        match self {
            Field::Uniform(v) => *v,
            Field::PerVoxel(values) => values[i],
        }
    }
}

/// Read access to a per-voxel quantity inside a hot loop; implemented by a
/// uniform value and by a slice so the kernels are monomorphised for both.
pub(crate) trait Access: Copy + Send + Sync {
    fn get(self, i: usize) -> f64;
    /// Values `i..i + 4`.
    fn get4(self, i: usize) -> [f64; 4];
}

#[derive(Clone, Copy)]
pub(crate) struct Uni(pub f64);

impl Access for Uni {
    #[inline]
    fn get(self, _i: usize) -> f64 {
        self.0
    }
    #[inline]
    fn get4(self, _i: usize) -> [f64; 4] {
        [self.0; 4]
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Per<'a>(pub &'a [f64]);

impl Access for Per<'_> {
    #[inline]
    fn get(self, i: usize) -> f64 {
        self.0[i]
    }
    #[inline]
    fn get4(self, i: usize) -> [f64; 4] {
        let s = &self.0[i..i + 4];
        [s[0], s[1], s[2], s[3]]
    }
}

/// Length check with a named error.
pub(crate) fn check_len(name: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            name,
            expected,
            actual,
        })
    }
}

/// Error for an invalid dose at voxel `index`.
pub(crate) fn bad_dose(index: usize, value: f64) -> Error {
    Error::InvalidVoxelValue {
        quantity: "dose_gy",
        index,
        value,
        requirement: "finite and >= 0 Gy",
    }
}

/// Error for an invalid weight at voxel `index`.
pub(crate) fn bad_weight(index: usize, value: f64) -> Error {
    Error::InvalidVoxelValue {
        quantity: "weight",
        index,
        value,
        requirement: "finite and >= 0",
    }
}

/// `out[i] = f(i, D_i)` for every dose `D_i` of `doses` (total course doses,
/// Gy), after checking that `out` has the same length; the first invalid dose
/// (NaN, infinite, negative) is reported with its index.
pub(crate) fn map_doses(
    doses: &[f64],
    out: &mut [f64],
    f: impl Fn(usize, f64) -> f64,
) -> Result<()> {
    check_len("out", doses.len(), out.len())?;
    for (i, (&d, o)) in doses.iter().zip(out.iter_mut()).enumerate() {
        if !dose_ok(d) {
            return Err(bad_dose(i, d));
        }
        *o = f(i, d);
    }
    Ok(())
}

/// `true` for a valid dose (finite, >= 0). NaN fails.
#[inline]
pub(crate) fn dose_ok(d: f64) -> bool {
    (0.0..f64::INFINITY).contains(&d)
}

/// `true` for a valid weight (finite, >= 0). NaN fails.
#[inline]
pub(crate) fn weight_ok(w: f64) -> bool {
    w.is_finite() && w >= 0.0
}

/// Check the dose and the weight of voxel `index` (the dose first).
#[inline]
pub(crate) fn check_voxel(index: usize, dose: f64, weight: f64) -> Result<()> {
    if !dose_ok(dose) {
        return Err(bad_dose(index, dose));
    }
    if !weight_ok(weight) {
        return Err(bad_weight(index, weight));
    }
    Ok(())
}

/// Check the shape of a weighted whole-distribution call: at least one dose, and
/// `weights` and the gradient buffer (if any) as long as the doses.
pub(crate) fn check_distribution(
    doses: &[f64],
    weights: Weights<'_>,
    grad: Option<&[f64]>,
) -> Result<()> {
    let n = doses.len();
    if n == 0 {
        return Err(Error::Empty { name: "doses_gy" });
    }
    weights.check_len(n)?;
    if let Some(g) = grad {
        check_len("grad_out", n, g.len())?;
    }
    Ok(())
}

/// The sum of the weights, which must be positive and finite (not every weight zero).
pub(crate) fn positive_total(wsum: f64) -> Result<f64> {
    if wsum.is_finite() && wsum > 0.0 {
        Ok(wsum)
    } else {
        Err(Error::NonPositiveTotal {
            name: "weights",
            sum: wsum,
        })
    }
}

/// Run `f` on every chunk of `CHUNK` voxels in parallel and return the per-chunk
/// results in chunk order. `f` gets the index of the first voxel of the chunk and
/// the chunk of `out` (if any).
pub(crate) fn map_chunks<T, F>(n: usize, out: Option<&mut [f64]>, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, Option<&mut [f64]>) -> T + Sync + Send,
{
    use rayon::prelude::*;
    if let Some(out) = out {
        debug_assert_eq!(out.len(), n);
        if n <= CHUNK {
            return vec![f(0, Some(out))];
        }
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, o)| f(c * CHUNK, Some(o)))
            .collect()
    } else {
        if n <= CHUNK {
            return vec![f(0, None)];
        }
        let chunks = n.div_ceil(CHUNK);
        (0..chunks)
            .into_par_iter()
            .map(|c| f(c * CHUNK, None))
            .collect()
    }
}

/// Length of the chunk that starts at `start`.
#[inline]
pub(crate) fn chunk_len(n: usize, start: usize) -> usize {
    CHUNK.min(n - start)
}

/// Fold per-chunk results in order, stopping at the first error (which is the
/// error of the lowest voxel index, because chunks are in voxel order).
pub(crate) fn collect_ok<T>(parts: Vec<Result<T>>) -> Result<Vec<T>> {
    parts.into_iter().collect()
}
