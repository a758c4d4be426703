//! Shared geometry helpers: centred grids, masks from analytic shapes,
//! centroids and coplanar beam sets.

use dosepaint_core::{Beam, Grid, PointMm, Structure, StructureRole, Volume};

use crate::{Error, Result};

/// Largest phantom grid we agree to allocate (about 256 MB per `f32` image):
/// a guard against a typo such as a spacing of 0.01 mm.
pub const MAX_PHANTOM_VOXELS: usize = 64 * 1024 * 1024;

/// Checks a spacing triple: finite, positive and at most `max_mm`.
pub(crate) fn check_spacing(spacing_mm: [f64; 3], max_mm: f64) -> Result<()> {
    if let Some(s) = spacing_mm
        .iter()
        .find(|s| !(s.is_finite() && **s > 0.0 && **s <= max_mm))
    {
        return Err(Error::invalid(
            "spacing_mm",
            format!(
                "{spacing_mm:?} mm: {s} must be a finite number in (0, {max_mm}] mm for this phantom"
            ),
        ));
    }
    Ok(())
}

/// A grid of spacing `spacing_mm` covering about `extent_mm` (the voxel
/// boundaries span `dims * spacing`), centred on the LPS origin with an odd
/// number of voxels per axis, so that a voxel centre lies exactly at 0.
pub(crate) fn centered_grid(extent_mm: [f64; 3], spacing_mm: [f64; 3]) -> Result<Grid> {
    let mut dims = [0usize; 3];
    for a in 0..3 {
        let n = (extent_mm[a] / spacing_mm[a]).round().max(1.0) as usize;
        dims[a] = if n.is_multiple_of(2) { n + 1 } else { n };
    }
    let n_voxels = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if n_voxels.is_none_or(|n| n > MAX_PHANTOM_VOXELS) {
        return Err(Error::invalid(
            "spacing_mm",
            format!(
                "{spacing_mm:?} mm over {extent_mm:?} mm gives {dims:?} voxels, more than \
                 {MAX_PHANTOM_VOXELS}; use a coarser spacing"
            ),
        ));
    }
    let origin = [0, 1, 2].map(|a| -((dims[a] - 1) as f64) / 2.0 * spacing_mm[a]);
    Ok(Grid::new(dims, spacing_mm, origin)?)
}

/// A mask whose voxel is inside when `inside(centre)` holds.
pub(crate) fn mask_from(grid: &Grid, inside: impl Fn(PointMm) -> bool) -> Volume<bool> {
    Volume::from_fn(grid.clone(), |v| inside(grid.voxel_center(v)))
}

/// A structure that must not be empty; the error names the phantom and hints
/// at the spacing.
pub(crate) fn nonempty_structure(
    phantom: &str,
    name: &str,
    role: StructureRole,
    mask: Volume<bool>,
) -> Result<Structure> {
    let s = Structure::new(name, role, mask)?;
    if s.is_empty() {
        return Err(Error::EmptyStructure {
            phantom: phantom.to_string(),
            structure: name.to_string(),
            reason: format!(
                "no voxel centre falls inside it at spacing {:?} mm; use a finer spacing",
                s.grid().spacing_mm()
            ),
        });
    }
    Ok(s)
}

/// Centroid (LPS, mm) of a structure's voxel centres; `None` if empty.
/// The same as core's [`Structure::centroid_mm`], kept for existing callers.
pub fn centroid_mm(s: &Structure) -> Option<PointMm> {
    s.centroid_mm()
}

/// Coplanar beams at the given gantry angles (couch and collimator 0), all
/// aimed at `isocenter`; named `G000`, `G040`, ...
pub(crate) fn coplanar_beams(angles_deg: &[f64], isocenter: PointMm) -> Result<Vec<Beam>> {
    angles_deg
        .iter()
        .map(|&g| {
            Beam::new(
                format!("G{:03.0}", g.rem_euclid(360.0)),
                g,
                0.0,
                0.0,
                isocenter,
            )
            .map_err(Error::from)
        })
        .collect()
}

/// `n` equally spaced gantry angles starting at 0: `0, 360/n, ...`.
pub fn equispaced_angles(n: usize) -> Vec<f64> {
    (0..n).map(|b| 360.0 * b as f64 / n as f64).collect()
}

/// Squared normalised ellipsoid radius of `p` about `c` with semi-axes `r`:
/// inside when `<= 1`.
#[inline]
pub(crate) fn ellipsoid(p: PointMm, c: PointMm, r: [f64; 3]) -> f64 {
    (0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum()
}

/// Squared normalised elliptic radius in the transverse (x, y) plane.
#[inline]
pub(crate) fn ellipse_xy(p: PointMm, c: [f64; 2], r: [f64; 2]) -> f64 {
    ((p[0] - c[0]) / r[0]).powi(2) + ((p[1] - c[1]) / r[1]).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centered_grid_is_odd_and_centred() {
        let g = centered_grid([500.0, 500.0, 322.0], [3.0, 3.0, 2.5]).unwrap();
        assert_eq!(g.dims(), [167, 167, 129]);
        assert_eq!(g.nearest_voxel([0.0; 3]), Some([83, 83, 64]));
        let c = g.voxel_center([83, 83, 64]);
        assert!(c.iter().all(|v| v.abs() < 1e-12));
        let g = centered_grid([100.0; 3], [10.0; 3]).unwrap();
        assert_eq!(g.dims(), [11, 11, 11]);
    }

    #[test]
    fn refuses_huge_and_bad_spacing() {
        assert!(centered_grid([500.0; 3], [0.01; 3]).is_err());
        assert!(check_spacing([1.0, f64::NAN, 1.0], 10.0).is_err());
        assert!(check_spacing([1.0, -1.0, 1.0], 10.0).is_err());
        assert!(check_spacing([1.0, 11.0, 1.0], 10.0).is_err());
        assert!(check_spacing([1.0, 2.0, 10.0], 10.0).is_ok());
    }

    #[test]
    fn angles() {
        let a = equispaced_angles(9);
        assert_eq!(a.len(), 9);
        assert!((a[1] - 40.0).abs() < 1e-12 && (a[8] - 320.0).abs() < 1e-12);
    }
}
