//! The voxel grid: dimensions, spacing, origin and orientation in patient space.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Patient coordinates of a point, DICOM LPS, in millimetres.
pub type PointMm = [f64; 3];

/// A regular 3-D voxel grid placed in patient (DICOM LPS) coordinates.
///
/// Voxel index `(i, j, k)` runs along the grid's first, second and third axes
/// (x varies fastest in memory); the centre of voxel `(i, j, k)` is at
/// `origin + i sx e_i + j sy e_j + k sz e_k`, where `e_*` are the rows of
/// [`Grid::direction`] and `s*` the spacing. Arrays on this grid have shape
/// `(nz, ny, nx)`.
///
/// ```
/// use dosepaint_core::Grid;
/// let grid = Grid::new([4, 3, 2], [2.0, 2.0, 3.0], [-3.0, -2.0, 0.0])?;
/// assert_eq!(grid.shape(), (2, 3, 4));
/// let p = grid.index_to_patient([1.0, 1.0, 1.0]);
/// assert_eq!(p, [-1.0, 0.0, 3.0]);
/// assert!((grid.voxel_volume_cm3() - 0.012).abs() < 1e-12);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GridSpec", into = "GridSpec")]
pub struct Grid {
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    origin_mm: PointMm,
    direction: [[f64; 3]; 3],
}

/// The serialised form of a [`Grid`]; deserialisation validates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GridSpec {
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    origin_mm: PointMm,
    #[serde(default = "identity")]
    direction: [[f64; 3]; 3],
}

fn identity() -> [[f64; 3]; 3] {
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

impl TryFrom<GridSpec> for Grid {
    type Error = Error;
    fn try_from(s: GridSpec) -> Result<Self> {
        Grid::with_direction(s.dims, s.spacing_mm, s.origin_mm, s.direction)
    }
}

impl From<Grid> for GridSpec {
    fn from(g: Grid) -> Self {
        GridSpec {
            dims: g.dims,
            spacing_mm: g.spacing_mm,
            origin_mm: g.origin_mm,
            direction: g.direction,
        }
    }
}

/// Tolerance for orthonormality of a direction matrix (DICOM orientation
/// cosines are usually written with 6 to 10 significant digits).
const DIRECTION_TOLERANCE: f64 = 1e-4;

/// Largest number of voxels a grid may hold (2^32 - 1, since voxel indices are
/// stored as `u32` in sparse matrices).
pub const MAX_VOXELS: usize = u32::MAX as usize;

impl Grid {
    /// An axis-aligned grid (direction = identity: i along L, j along P, k along S).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty dimension, a grid of more than
    /// [`MAX_VOXELS`] voxels, or a spacing or origin that is not positive and finite.
    pub fn new(dims: [usize; 3], spacing_mm: [f64; 3], origin_mm: PointMm) -> Result<Self> {
        Self::with_direction(dims, spacing_mm, origin_mm, identity())
    }

    /// A grid with an explicit orientation: `direction[a]` is the unit vector,
    /// in LPS, of index axis `a` (the rows are DICOM's row and column cosines and
    /// the slice normal).
    ///
    /// # Errors
    /// As [`Grid::new`], plus a direction matrix that is not orthonormal.
    pub fn with_direction(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: PointMm,
        direction: [[f64; 3]; 3],
    ) -> Result<Self> {
        if dims.contains(&0) {
            return Err(Error::invalid(
                "grid dimensions",
                format!("{dims:?} has an empty axis"),
            ));
        }
        let n = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_VOXELS)
            .ok_or_else(|| {
                Error::invalid(
                    "grid dimensions",
                    format!("{dims:?} exceeds {MAX_VOXELS} voxels"),
                )
            })?;
        debug_assert!(n > 0);
        if let Some(s) = spacing_mm.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid(
                "grid spacing",
                format!("{spacing_mm:?} mm: {s} is not a positive finite number"),
            ));
        }
        if origin_mm.iter().any(|o| !o.is_finite()) {
            return Err(Error::invalid(
                "grid origin",
                format!("{origin_mm:?} mm is not finite"),
            ));
        }
        for a in 0..3 {
            for b in 0..3 {
                let dot: f64 = (0..3).map(|c| direction[a][c] * direction[b][c]).sum();
                let expected = if a == b { 1.0 } else { 0.0 };
                if !dot.is_finite() || (dot - expected).abs() > DIRECTION_TOLERANCE {
                    return Err(Error::invalid(
                        "grid direction",
                        format!("{direction:?} is not orthonormal (row {a} . row {b} = {dot})"),
                    ));
                }
            }
        }
        Ok(Self {
            dims,
            spacing_mm,
            origin_mm,
            direction,
        })
    }

    /// Number of voxels along (x, y, z), i.e. `(nx, ny, nz)`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// The `ndarray` shape of data on this grid: `(nz, ny, nx)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.dims[2], self.dims[1], self.dims[0])
    }

    /// Voxel spacing along the three index axes, in mm.
    pub fn spacing_mm(&self) -> [f64; 3] {
        self.spacing_mm
    }

    /// Patient coordinates (LPS, mm) of the centre of voxel `(0, 0, 0)`.
    pub fn origin_mm(&self) -> PointMm {
        self.origin_mm
    }

    /// Unit vectors (LPS) of the three index axes, one per row.
    pub fn direction(&self) -> [[f64; 3]; 3] {
        self.direction
    }

    /// Whether the index axes are the LPS axes themselves.
    pub fn is_axis_aligned(&self) -> bool {
        self.direction == identity()
    }

    /// Total number of voxels.
    pub fn n_voxels(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Volume of one voxel in cm^3.
    pub fn voxel_volume_cm3(&self) -> f64 {
        self.spacing_mm.iter().product::<f64>() * 1e-3
    }

    /// Whether `(i, j, k)` lies inside the grid.
    pub fn contains_index(&self, [i, j, k]: [usize; 3]) -> bool {
        i < self.dims[0] && j < self.dims[1] && k < self.dims[2]
    }

    /// Linear (memory-order) index of voxel `(i, j, k)`: `(k ny + j) nx + i`.
    ///
    /// # Panics
    /// In debug builds, if the index is outside the grid (a programmer error).
    #[inline]
    pub fn linear_index(&self, [i, j, k]: [usize; 3]) -> usize {
        debug_assert!(self.contains_index([i, j, k]), "voxel index out of grid");
        (k * self.dims[1] + j) * self.dims[0] + i
    }

    /// Voxel index `(i, j, k)` of a linear index.
    #[inline]
    pub fn voxel_index(&self, linear: usize) -> [usize; 3] {
        let nx = self.dims[0];
        let ny = self.dims[1];
        [linear % nx, (linear / nx) % ny, linear / (nx * ny)]
    }

    /// Patient position (LPS, mm) of a continuous voxel index.
    #[inline]
    pub fn index_to_patient(&self, index: [f64; 3]) -> PointMm {
        let mut p = self.origin_mm;
        for a in 0..3 {
            let step = index[a] * self.spacing_mm[a];
            for (c, pc) in p.iter_mut().enumerate() {
                *pc += step * self.direction[a][c];
            }
        }
        p
    }

    /// Continuous voxel index of a patient position (LPS, mm); integer values
    /// are voxel centres.
    #[inline]
    pub fn patient_to_index(&self, p: PointMm) -> [f64; 3] {
        let d = [
            p[0] - self.origin_mm[0],
            p[1] - self.origin_mm[1],
            p[2] - self.origin_mm[2],
        ];
        let mut idx = [0.0; 3];
        for a in 0..3 {
            let proj: f64 = (0..3).map(|c| d[c] * self.direction[a][c]).sum();
            idx[a] = proj / self.spacing_mm[a];
        }
        idx
    }

    /// Patient position of the centre of voxel `(i, j, k)`.
    pub fn voxel_center(&self, [i, j, k]: [usize; 3]) -> PointMm {
        self.index_to_patient([i as f64, j as f64, k as f64])
    }

    /// The nearest voxel to a patient position, if it lies within the grid.
    pub fn nearest_voxel(&self, p: PointMm) -> Option<[usize; 3]> {
        let idx = self.patient_to_index(p);
        let mut out = [0usize; 3];
        for a in 0..3 {
            let r = idx[a].round();
            if !(r >= 0.0 && r < self.dims[a] as f64) {
                return None;
            }
            out[a] = r as usize;
        }
        Some(out)
    }

    /// Axis-aligned bounding box (LPS, mm) of the grid's voxel *boundaries*:
    /// `(min corner, max corner)`.
    pub fn bounding_box_mm(&self) -> (PointMm, PointMm) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for corner in 0..8 {
            let idx = [0, 1, 2].map(|a| {
                if corner >> a & 1 == 0 {
                    -0.5
                } else {
                    self.dims[a] as f64 - 0.5
                }
            });
            let p = self.index_to_patient(idx);
            for c in 0..3 {
                lo[c] = lo[c].min(p[c]);
                hi[c] = hi[c].max(p[c]);
            }
        }
        (lo, hi)
    }

    /// Equality within `tol_mm` on spacing, origin and (scaled) direction, with
    /// identical dimensions.
    pub fn approx_eq(&self, other: &Grid, tol_mm: f64) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= tol_mm;
        self.dims == other.dims
            && (0..3).all(|a| close(self.spacing_mm[a], other.spacing_mm[a]))
            && (0..3).all(|a| close(self.origin_mm[a], other.origin_mm[a]))
            && (0..3).all(|a| {
                // A direction error shows up as a displacement at the far corner.
                let extent = self.spacing_mm[a] * self.dims[a] as f64;
                (0..3).all(|c| {
                    close(
                        extent * self.direction[a][c],
                        extent * other.direction[a][c],
                    )
                })
            })
    }

    /// `Ok(())` if `other` equals this grid within [`GRID_TOLERANCE_MM`],
    /// otherwise a [`Error::GridMismatch`] naming `context`.
    ///
    /// # Errors
    /// [`Error::GridMismatch`] when the grids differ.
    pub fn ensure_same(&self, other: &Grid, context: &str) -> Result<()> {
        if self.approx_eq(other, GRID_TOLERANCE_MM) {
            Ok(())
        } else {
            Err(Error::GridMismatch {
                context: format!(
                    "{context}: dims {:?} vs {:?}, spacing {:?} vs {:?} mm, origin {:?} vs {:?} mm",
                    self.dims,
                    other.dims,
                    self.spacing_mm,
                    other.spacing_mm,
                    self.origin_mm,
                    other.origin_mm
                ),
            })
        }
    }

    /// A grid covering the same box with a new spacing (the origin moves so
    /// that the first voxel's lower boundary stays where it was).
    ///
    /// # Errors
    /// If the new spacing is not positive and finite.
    pub fn resampled_to_spacing(&self, spacing_mm: [f64; 3]) -> Result<Grid> {
        if spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::invalid(
                "grid spacing",
                format!("{spacing_mm:?} mm is not positive and finite"),
            ));
        }
        let dims = [0, 1, 2].map(|a| {
            ((self.dims[a] as f64 * self.spacing_mm[a] / spacing_mm[a]).round() as usize).max(1)
        });
        let start = self.index_to_patient([-0.5; 3]);
        let mut origin = start;
        for a in 0..3 {
            for (c, o) in origin.iter_mut().enumerate() {
                *o += 0.5 * spacing_mm[a] * self.direction[a][c];
            }
        }
        Grid::with_direction(dims, spacing_mm, origin, self.direction)
    }
}

/// Tolerance in mm below which two grids are considered the same.
pub const GRID_TOLERANCE_MM: f64 = 1e-3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_parameters() {
        assert!(Grid::new([0, 1, 1], [1.0; 3], [0.0; 3]).is_err());
        assert!(Grid::new([1, 1, 1], [1.0, -1.0, 1.0], [0.0; 3]).is_err());
        assert!(Grid::new([1, 1, 1], [1.0, f64::NAN, 1.0], [0.0; 3]).is_err());
        assert!(Grid::new([1, 1, 1], [1.0; 3], [0.0, f64::INFINITY, 0.0]).is_err());
        assert!(Grid::new([usize::MAX, 2, 1], [1.0; 3], [0.0; 3]).is_err());
        let skew = [[1.0, 0.0, 0.0], [0.7, 0.7, 0.0], [0.0, 0.0, 1.0]];
        assert!(Grid::with_direction([2, 2, 2], [1.0; 3], [0.0; 3], skew).is_err());
    }

    #[test]
    fn linear_index_is_x_fastest() {
        let g = Grid::new([4, 3, 2], [1.0; 3], [0.0; 3]).unwrap();
        assert_eq!(g.linear_index([1, 0, 0]), 1);
        assert_eq!(g.linear_index([0, 1, 0]), 4);
        assert_eq!(g.linear_index([0, 0, 1]), 12);
        assert_eq!(g.voxel_index(17), [1, 1, 1]);
    }

    #[test]
    fn rotated_grid_round_trips() {
        // A grid whose i axis runs along -y and j along +x (90 degree rotation).
        let dir = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let g = Grid::with_direction([5, 5, 5], [1.0, 2.0, 3.0], [10.0, 0.0, 0.0], dir).unwrap();
        let p = g.index_to_patient([1.0, 1.0, 1.0]);
        assert!((p[0] - 12.0).abs() < 1e-12 && (p[1] + 1.0).abs() < 1e-12);
        let back = g.patient_to_index(p);
        assert!(back.iter().all(|v| (v - 1.0).abs() < 1e-12));
        let (lo, hi) = g.bounding_box_mm();
        assert!((lo[0] - 9.0).abs() < 1e-12 && (hi[0] - 19.0).abs() < 1e-12);
    }
}
