//! Structures: named binary masks with a clinical role, and their set
//! operations and margins.

use serde::{Deserialize, Serialize};

use crate::{Error, Grid, Interpolation, PointMm, Result, Volume};

/// What a structure is for; optimizers and goals use it to pick defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructureRole {
    /// A target volume (GTV, CTV, PTV, boost subvolume).
    Target,
    /// An organ at risk.
    OrganAtRisk,
    /// The body outline.
    External,
    /// Anything else (support structures, rings, markers).
    Other,
}

/// A named region of interest: a binary mask on a grid.
///
/// ```
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// let grid = Grid::new([21, 21, 21], [1.0, 1.0, 2.0], [0.0; 3])?;
/// let gtv = Structure::new(
///     "GTV",
///     StructureRole::Target,
///     Volume::from_fn(grid, |[i, j, k]| i == 10 && j == 10 && k == 10),
/// )?;
/// // A 3 mm margin on a 1 x 1 x 2 mm grid reaches 3 voxels in x and y, 1 in z.
/// let ctv = gtv.dilate([3.0, 3.0, 3.0])?.renamed("CTV");
/// assert!(ctv.mask()[[13, 10, 10]] && !ctv.mask()[[14, 10, 10]]);
/// assert!(ctv.mask()[[10, 10, 11]] && !ctv.mask()[[10, 10, 12]]);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Structure {
    name: String,
    role: StructureRole,
    mask: Volume<bool>,
}

impl Structure {
    /// A structure from a mask (which may be empty: use
    /// [`Structure::ensure_not_empty`] where voxels are required).
    ///
    /// # Errors
    /// If the name is empty or only white space.
    pub fn new(name: impl Into<String>, role: StructureRole, mask: Volume<bool>) -> Result<Self> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(Error::invalid("structure name", "is empty"));
        }
        Ok(Self { name, role, mask })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role.
    pub fn role(&self) -> StructureRole {
        self.role
    }

    /// The mask.
    pub fn mask(&self) -> &Volume<bool> {
        &self.mask
    }

    /// The grid of the mask.
    pub fn grid(&self) -> &Grid {
        self.mask.grid()
    }

    /// The same structure under another name (names are never empty: an empty
    /// new name keeps the old one).
    #[must_use]
    pub fn renamed(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !name.trim().is_empty() {
            self.name = name;
        }
        self
    }

    /// The same structure with another role.
    #[must_use]
    pub fn with_role(mut self, role: StructureRole) -> Self {
        self.role = role;
        self
    }

    /// Number of voxels inside.
    pub fn voxel_count(&self) -> usize {
        self.mask.as_slice().iter().filter(|&&b| b).count()
    }

    /// Whether the mask holds no voxel.
    pub fn is_empty(&self) -> bool {
        !self.mask.as_slice().iter().any(|&b| b)
    }

    /// `Ok(())` if the structure has voxels, otherwise an error naming it.
    ///
    /// # Errors
    /// [`Error::Empty`] naming the structure and `purpose`.
    pub fn ensure_not_empty(&self, purpose: &str) -> Result<()> {
        if self.is_empty() {
            Err(Error::Empty {
                what: format!("structure \"{}\"", self.name),
                reason: format!("it holds no voxel on its grid, but {purpose} needs at least one"),
            })
        } else {
            Ok(())
        }
    }

    /// Volume in cm^3 (voxel count times voxel volume).
    pub fn volume_cm3(&self) -> f64 {
        self.voxel_count() as f64 * self.grid().voxel_volume_cm3()
    }

    /// Centroid (LPS, mm) of the voxel centres inside; `None` when empty.
    /// Used for isocentres placed at a target's centre.
    pub fn centroid_mm(&self) -> Option<PointMm> {
        let grid = self.grid();
        let mut sum = [0.0f64; 3];
        let mut n = 0usize;
        for (lin, &inside) in self.mask.as_slice().iter().enumerate() {
            if inside {
                let p = grid.voxel_center(grid.voxel_index(lin));
                for a in 0..3 {
                    sum[a] += p[a];
                }
                n += 1;
            }
        }
        (n > 0).then(|| sum.map(|c| c / n as f64))
    }

    /// Linear (memory-order) indices of the voxels inside, ascending.
    pub fn voxel_indices(&self) -> Vec<u32> {
        self.mask
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(n, _)| n as u32)
            .collect()
    }

    fn combine(&self, other: &Structure, op: &str, f: impl Fn(bool, bool) -> bool) -> Result<Self> {
        let mask = self
            .mask
            .zip_map(&other.mask, |&a, &b| f(a, b))
            .map_err(|e| match e {
                Error::GridMismatch { context } => Error::GridMismatch {
                    context: format!(
                        "{op} of \"{}\" and \"{}\": {context}",
                        self.name, other.name
                    ),
                },
                e => e,
            })?;
        Ok(Self {
            name: format!("{} {op} {}", self.name, other.name),
            role: self.role,
            mask,
        })
    }

    /// Voxels in either structure.
    ///
    /// # Errors
    /// [`Error::GridMismatch`] when the grids differ.
    pub fn union(&self, other: &Structure) -> Result<Self> {
        self.combine(other, "or", |a, b| a || b)
    }

    /// Voxels in both structures.
    ///
    /// # Errors
    /// [`Error::GridMismatch`] when the grids differ.
    pub fn intersection(&self, other: &Structure) -> Result<Self> {
        self.combine(other, "and", |a, b| a && b)
    }

    /// Voxels in `self` but not in `other` (e.g. PTV minus boost).
    ///
    /// # Errors
    /// [`Error::GridMismatch`] when the grids differ.
    pub fn difference(&self, other: &Structure) -> Result<Self> {
        self.combine(other, "minus", |a, b| a && !b)
    }

    /// Grows the structure by an ellipsoidal margin of `margin_mm` (x, y, z):
    /// a voxel joins when its centre lies within the ellipsoid of those radii
    /// around some voxel centre inside. Exact for any anisotropic spacing
    /// (separable Euclidean distance transform, Felzenszwalb & Huttenlocher 2012).
    ///
    /// # Errors
    /// If a margin is negative or not finite.
    pub fn dilate(&self, margin_mm: [f64; 3]) -> Result<Self> {
        let within = within_margin(&self.mask, margin_mm, true)?;
        Ok(Self {
            name: self.name.clone(),
            role: self.role,
            mask: within,
        })
    }

    /// Shrinks the structure by an ellipsoidal margin: a voxel stays when no
    /// voxel outside lies within the margin ellipsoid. Voxels beyond the grid
    /// are not counted as outside.
    ///
    /// # Errors
    /// If a margin is negative or not finite.
    pub fn erode(&self, margin_mm: [f64; 3]) -> Result<Self> {
        let near_outside = within_margin(&self.mask, margin_mm, false)?;
        Ok(Self {
            name: self.name.clone(),
            role: self.role,
            mask: near_outside.map(|&b| !b),
        })
    }

    /// The structure on another grid: a target voxel is inside when the
    /// trilinear interpolation of the 0/1 mask at its centre is at least 0.5
    /// (nearest-neighbour would shift boundaries by up to half a source voxel).
    pub fn resample(&self, target: &Grid) -> Self {
        let fraction = self.mask.map(|&b| if b { 1.0f32 } else { 0.0 });
        let resampled = fraction.resample(target, Interpolation::Linear, 0.0);
        Self {
            name: self.name.clone(),
            role: self.role,
            mask: resampled.map(|&f| f >= 0.5),
        }
    }
}

/// Voxels whose centre lies within the margin ellipsoid of a voxel whose mask
/// value equals `seed_value`.
fn within_margin(
    mask: &Volume<bool>,
    margin_mm: [f64; 3],
    seed_value: bool,
) -> Result<Volume<bool>> {
    if margin_mm.iter().any(|m| !(m.is_finite() && *m >= 0.0)) {
        return Err(Error::invalid(
            "margin",
            format!("{margin_mm:?} mm must be finite and non-negative"),
        ));
    }
    let grid = mask.grid();
    let spacing = grid.spacing_mm();
    let dims = grid.dims();
    // Squared distance in units of the margin: a voxel is within when <= 1.
    let mut dist: Vec<f64> = mask
        .as_slice()
        .iter()
        .map(|&b| if b == seed_value { 0.0 } else { f64::INFINITY })
        .collect();
    let strides = [1, dims[0], dims[0] * dims[1]];
    for axis in 0..3 {
        if margin_mm[axis] <= 0.0 {
            continue; // no reach along this axis: distances stay per line
        }
        let weight = (spacing[axis] / margin_mm[axis]).powi(2);
        let n = dims[axis];
        let stride = strides[axis];
        let mut line = vec![0.0; n];
        let mut out = vec![0.0; n];
        let mut scratch = Envelope::with_capacity(n);
        for start in line_starts(dims, axis) {
            for (q, v) in line.iter_mut().enumerate() {
                *v = dist[start + q * stride];
            }
            scratch.transform(&line, weight, &mut out);
            for (q, v) in out.iter().enumerate() {
                dist[start + q * stride] = *v;
            }
        }
    }
    const ROUNDING: f64 = 1e-9;
    Volume::from_vec(
        grid.clone(),
        dist.into_iter().map(|d| d <= 1.0 + ROUNDING).collect(),
    )
}

/// Linear indices of the first voxel of every grid line along `axis`.
fn line_starts(dims: [usize; 3], axis: usize) -> Vec<usize> {
    let strides = [1, dims[0], dims[0] * dims[1]];
    let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    let mut starts = Vec::with_capacity(dims[others[0]] * dims[others[1]]);
    for b in 0..dims[others[1]] {
        for a in 0..dims[others[0]] {
            starts.push(a * strides[others[0]] + b * strides[others[1]]);
        }
    }
    starts
}

/// Lower envelope of parabolas for the 1-D squared distance transform
/// `out[p] = min_q (w (p - q)^2 + f[q])` (Felzenszwalb & Huttenlocher,
/// Theory of Computing 8:415, 2012).
/// Its buffers are reused from line to line (one line per call).
struct Envelope {
    vertices: Vec<usize>,
    bounds: Vec<f64>,
    finite: Vec<usize>,
}

impl Envelope {
    fn with_capacity(n: usize) -> Self {
        Self {
            vertices: Vec::with_capacity(n),
            bounds: Vec::with_capacity(n + 1),
            finite: Vec::with_capacity(n),
        }
    }

    fn transform(&mut self, f: &[f64], w: f64, out: &mut [f64]) {
        self.vertices.clear();
        self.bounds.clear();
        self.finite.clear();
        self.finite
            .extend((0..f.len()).filter(|&q| f[q].is_finite()));
        if self.finite.is_empty() {
            out.fill(f64::INFINITY);
            return;
        }
        // Intersection abscissa of the parabolas rooted at q and r (q > r).
        let meet = |q: usize, r: usize| {
            ((f[q] + w * (q * q) as f64) - (f[r] + w * (r * r) as f64))
                / (2.0 * w * (q as f64 - r as f64))
        };
        for &q in &self.finite {
            loop {
                match self.vertices.last() {
                    None => {
                        self.vertices.push(q);
                        self.bounds.push(f64::NEG_INFINITY);
                        break;
                    }
                    Some(&r) => {
                        let s = meet(q, r);
                        if s <= *self.bounds.last().expect("bounds track vertices") {
                            self.vertices.pop();
                            self.bounds.pop();
                        } else {
                            self.vertices.push(q);
                            self.bounds.push(s);
                            break;
                        }
                    }
                }
            }
        }
        let mut k = 0;
        for (p, o) in out.iter_mut().enumerate() {
            let x = p as f64;
            while k + 1 < self.vertices.len() && self.bounds[k + 1] < x {
                k += 1;
            }
            let q = self.vertices[k];
            let d = x - q as f64;
            *o = w * d * d + f[q];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force_dilate(mask: &Volume<bool>, margin: [f64; 3]) -> Volume<bool> {
        let grid = mask.grid().clone();
        let s = grid.spacing_mm();
        let inside: Vec<[usize; 3]> = (0..grid.n_voxels())
            .filter(|&n| mask.as_slice()[n])
            .map(|n| grid.voxel_index(n))
            .collect();
        Volume::from_fn(grid, |v| {
            inside.iter().any(|u| {
                (0..3)
                    .map(|a| {
                        let d = (v[a] as f64 - u[a] as f64) * s[a];
                        if margin[a] > 0.0 {
                            (d / margin[a]).powi(2)
                        } else if d == 0.0 {
                            0.0
                        } else {
                            f64::INFINITY
                        }
                    })
                    .sum::<f64>()
                    <= 1.0 + 1e-9
            })
        })
    }

    #[test]
    fn dilation_matches_brute_force() {
        let grid = Grid::new([9, 8, 7], [1.0, 1.5, 2.5], [0.0; 3]).unwrap();
        let mask = Volume::from_fn(grid, |[i, j, k]| (i * 7 + j * 3 + k * 5) % 11 == 0 && i > 2);
        for margin in [
            [2.0, 2.0, 2.0],
            [3.0, 1.0, 5.0],
            [0.0, 3.0, 2.5],
            [4.0, 0.0, 0.0],
        ] {
            let s = Structure::new("m", StructureRole::Other, mask.clone()).unwrap();
            assert_eq!(
                s.dilate(margin).unwrap().mask(),
                &brute_force_dilate(&mask, margin)
            );
        }
    }
}
