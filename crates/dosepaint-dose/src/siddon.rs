//! Exact voxel traversal of a ray (Siddon 1985, Med Phys 12:252, in the
//! incremental form of Jacobs et al. 1998 / Amanatides & Woo 1987): the
//! segments of a line through a voxel grid, with their densities.

use dosepaint_core::{Grid, PointMm};

use crate::PatientModel;

/// Calls `visit(t0, t1, density)` for every voxel the segment from `a` to
/// `b` crosses, in order, where `t` in `[0, 1]` parametrises `a + t (b - a)`.
/// Works for any grid orientation (the traversal runs in index space, where
/// parameters are unchanged by the affine map).
pub(crate) fn traverse(
    grid: &Grid,
    values: &[f32],
    a: PointMm,
    b: PointMm,
    mut visit: impl FnMut(f64, f64, f32),
) {
    let dims = grid.dims();
    // Index space shifted by 1/2: voxel k spans [k, k + 1].
    let ia = grid.patient_to_index(a).map(|v| v + 0.5);
    let ib = grid.patient_to_index(b).map(|v| v + 0.5);
    let d = [0, 1, 2].map(|c| ib[c] - ia[c]);
    let mut t_in = 0.0f64;
    let mut t_out = 1.0f64;
    for c in 0..3 {
        let n = dims[c] as f64;
        if d[c].abs() < 1e-300 {
            if !(ia[c] >= 0.0 && ia[c] < n) {
                return;
            }
        } else {
            let t0 = -ia[c] / d[c];
            let t1 = (n - ia[c]) / d[c];
            t_in = t_in.max(t0.min(t1));
            t_out = t_out.min(t0.max(t1));
        }
    }
    if t_in >= t_out {
        return;
    }
    let mid = t_in + 0.5 * (t_out - t_in).min(1e-9);
    let mut idx = [0i64; 3];
    let mut t_next = [f64::INFINITY; 3];
    let mut dt = [f64::INFINITY; 3];
    let mut step = [0i64; 3];
    for c in 0..3 {
        let p = ia[c] + mid * d[c];
        idx[c] = (p.floor() as i64).clamp(0, dims[c] as i64 - 1);
        if d[c] > 1e-300 {
            step[c] = 1;
            dt[c] = 1.0 / d[c];
            t_next[c] = (idx[c] as f64 + 1.0 - ia[c]) / d[c];
        } else if d[c] < -1e-300 {
            step[c] = -1;
            dt[c] = -1.0 / d[c];
            t_next[c] = (idx[c] as f64 - ia[c]) / d[c];
        }
    }
    let mut t = t_in;
    loop {
        let c = if t_next[0] <= t_next[1] && t_next[0] <= t_next[2] {
            0
        } else if t_next[1] <= t_next[2] {
            1
        } else {
            2
        };
        let t_end = t_next[c].min(t_out);
        if t_end > t {
            let lin = grid.linear_index(idx.map(|v| v as usize));
            visit(t, t_end, values[lin]);
        }
        if t_end >= t_out {
            break;
        }
        t = t_end;
        idx[c] += step[c];
        if idx[c] < 0 || idx[c] >= dims[c] as i64 {
            break;
        }
        t_next[c] += dt[c];
    }
}

/// Radiological (water-equivalent) path length in mm between two points:
/// the integral of relative electron density along the segment, by exact
/// voxel traversal (the density outside the CT volume counts as 0).
///
/// ```
/// use dosepaint_core::{Grid, PatientPosition, Volume};
/// use dosepaint_dose::{PatientModel, radiological_path_mm};
/// let grid = Grid::new([10, 10, 10], [2.0; 3], [0.0; 3])?;
/// let water = PatientModel::from_density(Volume::filled(grid, 1.0f32), PatientPosition::HFS)?;
/// // The CT box spans -1..19 mm: a line from x = -50 to 50 mm crosses 20 mm of it.
/// let l = radiological_path_mm(&water, [-50.0, 5.0, 5.0], [50.0, 5.0, 5.0]);
/// assert!((l - 20.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_dose::Error>(())
/// ```
pub fn radiological_path_mm(patient: &PatientModel, a: PointMm, b: PointMm) -> f64 {
    let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2) + (b[2] - a[2]).powi(2)).sqrt();
    let mut acc = 0.0;
    traverse(
        patient.grid(),
        patient.density().as_slice(),
        a,
        b,
        |t0, t1, rho| acc += f64::from(rho) * (t1 - t0),
    );
    acc * len
}

#[cfg(test)]
mod tests {
    use super::*;
    use dosepaint_core::{PatientPosition, Volume};

    fn box_patient(rho: impl Fn([usize; 3]) -> f32) -> PatientModel {
        let grid = Grid::new([20, 16, 12], [2.0, 2.5, 3.0], [-19.0, -18.75, -16.5]).unwrap();
        PatientModel::from_density(Volume::from_fn(grid, rho), PatientPosition::HFS).unwrap()
    }

    #[test]
    fn oblique_ray_through_uniform_box_gives_geometric_length() {
        let p = box_patient(|_| 1.0);
        // Box spans x in [-20, 20], y in [-20, 20], z in [-18, 18].
        let a = [-100.0, -30.0, -10.0];
        let b = [100.0, 30.0, 10.0];
        // Entry and exit through the x faces: x = +-20, i.e. t in [0.4, 0.6].
        let len = ((200.0f64).powi(2) + 60.0f64.powi(2) + 20.0f64.powi(2)).sqrt();
        let expected = 0.2 * len;
        assert!((radiological_path_mm(&p, a, b) - expected).abs() < 1e-9);
        // Reversed direction gives the same length.
        assert!((radiological_path_mm(&p, b, a) - expected).abs() < 1e-9);
    }

    #[test]
    fn segments_are_contiguous_and_sum_to_the_inside_length() {
        let p = box_patient(|[i, j, k]| (i + 2 * j + 3 * k) as f32 * 0.01);
        let a = [-37.0, 41.0, -25.0];
        let b = [29.0, -33.0, 22.0];
        let mut last: Option<f64> = None;
        let mut total = 0.0;
        traverse(p.grid(), p.density().as_slice(), a, b, |t0, t1, _| {
            if let Some(l) = last {
                assert!((t0 - l).abs() < 1e-12, "gap between segments");
            }
            assert!(t1 > t0);
            total += t1 - t0;
            last = Some(t1);
        });
        assert!(total > 0.0 && total <= 1.0);
    }

    #[test]
    fn slab_density_is_integrated_exactly() {
        // Density 0.25 for x < 0 and 1 for x > 0 (voxel boundary at x = 0).
        let p = box_patient(|[i, _, _]| if i < 10 { 0.25 } else { 1.0 });
        let l = radiological_path_mm(&p, [-30.0, 0.3, 0.2], [30.0, 0.3, 0.2]);
        assert!((l - (20.0 * 0.25 + 20.0)).abs() < 1e-9, "{l}");
    }

    #[test]
    fn ray_missing_the_box_gives_zero() {
        let p = box_patient(|_| 1.0);
        assert!(radiological_path_mm(&p, [-50.0, 50.0, 0.0], [50.0, 50.0, 0.0]).abs() < 1e-12);
        // Along a boundary plane outside the box.
        assert!(radiological_path_mm(&p, [21.0, -50.0, 0.0], [21.0, 50.0, 0.0]).abs() < 1e-12);
    }
}
