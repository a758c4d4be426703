//! Data on a grid: `Volume<T>`, with sampling and resampling.

use ndarray::{Array3, Axis, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{AffineTransform, Error, Grid, PointMm, Result};

/// Scalar types that can be interpolated (converted to and from `f64`).
pub trait Real: Copy + Send + Sync + PartialOrd + 'static {
    /// Widens to `f64`.
    fn to_f64(self) -> f64;
    /// Narrows from `f64` (rounding to the nearest representable value).
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// How values between voxel centres are obtained when resampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Trilinear: for continuous data (CT numbers, SUV, dose).
    Linear,
    /// Nearest neighbour: for labels and masks.
    Nearest,
}

/// A 3-D array of values on a [`Grid`]; the array has shape `(nz, ny, nx)`.
///
/// Read a voxel by its grid index `(i, j, k)` with [`Volume::get`] (or
/// `volume[[i, j, k]]`): the transposition to the array's `[k, j, i]` happens
/// there and nowhere else.
///
/// ```
/// use dosepaint_core::{Grid, Volume};
/// let grid = Grid::new([3, 2, 1], [1.0; 3], [0.0; 3])?;
/// let v = Volume::from_fn(grid, |[i, j, _k]| (10 * j + i) as f32);
/// assert_eq!(v.get([2, 1, 0]), Some(&12.0));
/// assert_eq!(v.data()[[0, 1, 2]], 12.0); // the array is indexed [k, j, i]
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume<T> {
    grid: Grid,
    data: Array3<T>,
}

impl<T> Volume<T> {
    /// Wraps an array whose shape must be the grid's `(nz, ny, nx)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ.
    pub fn new(grid: Grid, data: Array3<T>) -> Result<Self>
    where
        T: Clone,
    {
        let (nz, ny, nx) = grid.shape();
        if data.dim() != (nz, ny, nx) {
            return Err(Error::shape(
                "volume data",
                format!("(nz, ny, nx) = {:?}", (nz, ny, nx)),
                format!("{:?}", data.dim()),
            ));
        }
        let data = if data.is_standard_layout() {
            data
        } else {
            data.as_standard_layout().into_owned()
        };
        Ok(Self { grid, data })
    }

    /// A volume from a flat vector in memory order (x fastest).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the length is not the voxel count.
    pub fn from_vec(grid: Grid, values: Vec<T>) -> Result<Self> {
        let n = grid.n_voxels();
        if values.len() != n {
            return Err(Error::shape("volume data", n, values.len()));
        }
        let data = Array3::from_shape_vec(grid.shape(), values)
            .map_err(|e| Error::shape("volume data", n, e))?;
        Ok(Self { grid, data })
    }

    /// A volume with every voxel set to `value`.
    pub fn filled(grid: Grid, value: T) -> Self
    where
        T: Clone,
    {
        let data = Array3::from_elem(grid.shape(), value);
        Self { grid, data }
    }

    /// A volume whose voxel `(i, j, k)` is `f([i, j, k])`.
    pub fn from_fn(grid: Grid, mut f: impl FnMut([usize; 3]) -> T) -> Self {
        let data = Array3::from_shape_fn(grid.shape(), |(k, j, i)| f([i, j, k]));
        Self { grid, data }
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The array, shape `(nz, ny, nx)`.
    pub fn data(&self) -> &Array3<T> {
        &self.data
    }

    /// The array, mutably (its shape cannot change through this view).
    pub fn data_mut(&mut self) -> ndarray::ArrayViewMut3<'_, T> {
        self.data.view_mut()
    }

    /// The values in memory order (x fastest), one per voxel.
    pub fn as_slice(&self) -> &[T] {
        self.data
            .as_slice()
            .expect("volume data is kept in standard layout")
    }

    /// The values in memory order, mutably.
    pub fn as_slice_mut(&mut self) -> &mut [T] {
        self.data
            .as_slice_mut()
            .expect("volume data is kept in standard layout")
    }

    /// Splits into grid and array.
    pub fn into_parts(self) -> (Grid, Array3<T>) {
        (self.grid, self.data)
    }

    /// The value at voxel `(i, j, k)`, or `None` outside the grid.
    #[inline]
    pub fn get(&self, [i, j, k]: [usize; 3]) -> Option<&T> {
        self.data.get([k, j, i])
    }

    /// The value at voxel `(i, j, k)`, mutably.
    #[inline]
    pub fn get_mut(&mut self, [i, j, k]: [usize; 3]) -> Option<&mut T> {
        self.data.get_mut([k, j, i])
    }

    /// A new volume on the same grid with `f` applied to every voxel.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Volume<U> {
        Volume {
            grid: self.grid.clone(),
            data: self.data.map(f),
        }
    }

    /// A new volume combining two volumes on the same grid voxel by voxel.
    ///
    /// # Errors
    /// [`Error::GridMismatch`] when the grids differ.
    pub fn zip_map<U, V>(
        &self,
        other: &Volume<U>,
        mut f: impl FnMut(&T, &U) -> V,
    ) -> Result<Volume<V>> {
        self.grid
            .ensure_same(&other.grid, "zip_map of two volumes")?;
        let mut out = Vec::with_capacity(self.grid.n_voxels());
        Zip::from(&self.data)
            .and(&other.data)
            .for_each(|a, b| out.push(f(a, b)));
        Volume::from_vec(self.grid.clone(), out)
    }

    /// Same volume on a relabelled grid of the same dimensions.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the dimensions differ.
    pub fn with_grid(self, grid: Grid) -> Result<Self> {
        if grid.dims() != self.grid.dims() {
            return Err(Error::shape(
                "with_grid",
                format!("{:?}", self.grid.dims()),
                format!("{:?}", grid.dims()),
            ));
        }
        Ok(Self {
            grid,
            data: self.data,
        })
    }
}

impl<T> std::ops::Index<[usize; 3]> for Volume<T> {
    type Output = T;
    /// Voxel `(i, j, k)`; panics outside the grid (use [`Volume::get`] for
    /// indices that come from users).
    fn index(&self, [i, j, k]: [usize; 3]) -> &T {
        &self.data[[k, j, i]]
    }
}

impl<T> std::ops::IndexMut<[usize; 3]> for Volume<T> {
    fn index_mut(&mut self, [i, j, k]: [usize; 3]) -> &mut T {
        &mut self.data[[k, j, i]]
    }
}

/// Summary statistics of a volume's values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Smallest finite value.
    pub min: f64,
    /// Largest finite value.
    pub max: f64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Number of finite values.
    pub finite: usize,
    /// Number of NaN or infinite values.
    pub non_finite: usize,
}

impl<T: Real> Volume<T> {
    /// Statistics over finite values (NaN and infinities are counted, not used).
    pub fn stats(&self) -> Stats {
        let (mut min, mut max, mut sum, mut finite) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0);
        for v in self.as_slice() {
            let v = v.to_f64();
            if v.is_finite() {
                min = min.min(v);
                max = max.max(v);
                sum += v;
                finite += 1;
            }
        }
        Stats {
            min,
            max,
            mean: if finite > 0 {
                sum / finite as f64
            } else {
                f64::NAN
            },
            finite,
            non_finite: self.grid.n_voxels() - finite,
        }
    }

    /// `Ok` if every value is finite; otherwise the first offending voxel.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming `context` and the voxel index.
    pub fn ensure_finite(&self, context: &str) -> Result<()> {
        match self.as_slice().iter().position(|v| !v.to_f64().is_finite()) {
            None => Ok(()),
            Some(n) => Err(Error::NonFinite {
                context: context.to_string(),
                location: format!(
                    "voxel {:?} ({} non-finite voxels in all)",
                    self.grid.voxel_index(n),
                    self.as_slice()
                        .iter()
                        .filter(|v| !v.to_f64().is_finite())
                        .count()
                ),
            }),
        }
    }

    /// Trilinear interpolation at a patient point; `None` outside the grid's
    /// boundary box. Within half a voxel of the boundary the edge value is used.
    pub fn sample_linear(&self, p: PointMm) -> Option<f64> {
        sample_linear(&self.grid, self.as_slice(), self.grid.patient_to_index(p))
    }

    /// Resamples onto `target` (trilinear or nearest), with `outside` where
    /// the target voxel centre falls outside this volume. Runs in parallel over
    /// target slices.
    pub fn resample(&self, target: &Grid, interpolation: Interpolation, outside: T) -> Self {
        self.resample_mapped(target, interpolation, outside, |p| p)
    }

    /// Resamples onto a grid in another frame of reference: `target_to_source`
    /// maps a point of the target's frame (e.g. the planning CT) into this
    /// volume's frame (e.g. a registered PET).
    pub fn resample_through(
        &self,
        target: &Grid,
        target_to_source: &AffineTransform,
        interpolation: Interpolation,
        outside: T,
    ) -> Self {
        self.resample_mapped(target, interpolation, outside, |p| {
            target_to_source.apply(p)
        })
    }

    fn resample_mapped(
        &self,
        target: &Grid,
        interpolation: Interpolation,
        outside: T,
        to_source: impl Fn(PointMm) -> PointMm + Sync,
    ) -> Self {
        let src = self.as_slice();
        sample_onto(target, outside, |p| {
            let idx = self.grid.patient_to_index(to_source(p));
            match interpolation {
                Interpolation::Linear => sample_linear(&self.grid, src, idx).map(T::from_f64),
                Interpolation::Nearest => sample_nearest(&self.grid, src, idx).copied(),
            }
        })
    }
}

impl<T: Clone + Send + Sync> Volume<T> {
    /// Nearest-neighbour resampling for any value type (labels, masks).
    pub fn resample_nearest(&self, target: &Grid, outside: T) -> Self {
        self.resample_nearest_through(target, &AffineTransform::identity(), outside)
    }

    /// Nearest-neighbour resampling through a frame-of-reference transform
    /// (see [`Volume::resample_through`]).
    pub fn resample_nearest_through(
        &self,
        target: &Grid,
        target_to_source: &AffineTransform,
        outside: T,
    ) -> Self {
        let src = self.as_slice();
        sample_onto(target, outside, |p| {
            let idx = self.grid.patient_to_index(target_to_source.apply(p));
            sample_nearest(&self.grid, src, idx).cloned()
        })
    }
}

/// A volume on `target` whose voxels take `sample(centre)`, or `outside`
/// where it gives `None`; parallel over slices.
fn sample_onto<T: Clone + Send + Sync>(
    target: &Grid,
    outside: T,
    sample: impl Fn(PointMm) -> Option<T> + Sync,
) -> Volume<T> {
    let mut data = Array3::from_elem(target.shape(), outside);
    data.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut slice)| {
            for ((j, i), out) in slice.indexed_iter_mut() {
                if let Some(v) = sample(target.voxel_center([i, j, k])) {
                    *out = v;
                }
            }
        });
    Volume {
        grid: target.clone(),
        data,
    }
}

/// Whether a continuous index lies inside the grid's boundary box (within half
/// a voxel of the outermost centres, with a small tolerance for rounding).
#[inline]
fn inside(grid: &Grid, idx: [f64; 3]) -> bool {
    const EPS: f64 = 1e-9;
    let dims = grid.dims();
    (0..3).all(|a| idx[a] >= -0.5 - EPS && idx[a] <= dims[a] as f64 - 0.5 + EPS)
}

#[inline]
fn sample_nearest<'a, T>(grid: &Grid, data: &'a [T], idx: [f64; 3]) -> Option<&'a T> {
    if !inside(grid, idx) {
        return None;
    }
    let dims = grid.dims();
    let v = [0, 1, 2].map(|a| (idx[a].round().max(0.0) as usize).min(dims[a] - 1));
    data.get(grid.linear_index(v))
}

#[inline]
fn sample_linear<T: Real>(grid: &Grid, data: &[T], idx: [f64; 3]) -> Option<f64> {
    if !inside(grid, idx) {
        return None;
    }
    let dims = grid.dims();
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    let mut frac = [0.0; 3];
    for a in 0..3 {
        let x = idx[a].clamp(0.0, (dims[a] - 1) as f64);
        let f = x.floor();
        lo[a] = f as usize;
        hi[a] = (lo[a] + 1).min(dims[a] - 1);
        frac[a] = x - f;
    }
    let at = |i: usize, j: usize, k: usize| data[grid.linear_index([i, j, k])].to_f64();
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let c00 = lerp(at(lo[0], lo[1], lo[2]), at(hi[0], lo[1], lo[2]), frac[0]);
    let c10 = lerp(at(lo[0], hi[1], lo[2]), at(hi[0], hi[1], lo[2]), frac[0]);
    let c01 = lerp(at(lo[0], lo[1], hi[2]), at(hi[0], lo[1], hi[2]), frac[0]);
    let c11 = lerp(at(lo[0], hi[1], hi[2]), at(hi[0], hi[1], hi[2]), frac[0]);
    let c0 = lerp(c00, c10, frac[1]);
    let c1 = lerp(c01, c11, frac[1]);
    Some(lerp(c0, c1, frac[2]))
}
