//! Planar contours <-> voxel masks.
//!
//! **Rasterization** (contours -> mask), even-odd rule: a voxel of a slice
//! is inside when its centre is inside an odd number of the slice's
//! polygons, so holes (a contour inside another) and several islands per
//! slice come out right. A centre exactly on an edge is decided by a
//! half-open rule: it counts as inside when the edge bounds the region on
//! the centre's low-`i` (or low-`j`) side and as outside on the high side,
//! exactly as a scanline `x_left <= i < x_right` fill. So two ROIs that
//! share an edge never both claim a voxel, and a rectangle spanning
//! `[a - 1/2, a + w - 1/2]` in index units covers exactly `w` voxels.
//!
//! Contour planes and grid slices: a contour drawn on an image slice stands
//! for the slab of that slice, `slab_mm` thick (the image's slice spacing;
//! [`crate::RtStruct`] estimates it as the smallest distance between two
//! contour planes of the whole structure set). Each grid slice takes the
//! contours of the nearest plane of the ROI if its centre lies within half
//! a slab (and at least half a grid slice) of that plane. Contours drawn on
//! every CT slice thus fill exactly those slices of a CT-aligned grid, and a
//! 3 mm contour stack fills a 1 mm grid the way a planning system shows it.
//!
//! **Contouring** (mask -> contours), marching squares on the voxel
//! centres of each slice with threshold 1/2: contour vertices are the
//! midpoints between an inside and an outside centre, diagonal pairs of
//! inside voxels are joined (8-connected foreground), collinear vertices are
//! dropped. No voxel centre ever lies on such a contour, so rasterizing the
//! contours of a mask on the same grid gives the mask back exactly.

use std::collections::BTreeMap;

use dosepaint_core::{Grid, PointMm, Volume};

use crate::{Error, Result};

/// Largest distance (mm) of a contour point from its plane, and between two
/// contours counted as the same plane.
const PLANE_TOL_MM: f64 = 0.05;

/// Rasterizes closed planar polygons (patient coordinates, LPS mm) onto a
/// grid with the even-odd rule (see the module docs for the boundary and
/// slab rules; `slab_mm = None` means one grid slice). `what` names the ROI
/// in errors.
///
/// # Errors
/// [`Error::InvalidInput`] when a polygon has fewer than three points, is not
/// planar, or its plane is not parallel to the grid's slices.
pub fn rasterize(
    polygons: &[Vec<PointMm>],
    grid: &Grid,
    what: &str,
    slab_mm: Option<f64>,
) -> Result<Volume<bool>> {
    let sz = grid.spacing_mm()[2];
    let slab = match slab_mm {
        None => sz,
        Some(s) if s.is_finite() && s > 0.0 => s.max(sz),
        Some(s) => {
            return Err(Error::input(
                format!("contour slab of {what}"),
                format!("{s} mm must be positive"),
            ));
        }
    };
    let reach = 0.5 * slab / sz;
    // Each polygon in index space with its plane position k.
    let mut planar: Vec<(f64, Vec<[f64; 2]>)> = Vec::with_capacity(polygons.len());
    for (n, poly) in polygons.iter().enumerate() {
        if poly.len() < 3 {
            return Err(Error::input(
                format!("contour {n} of {what}"),
                format!("{} points; a closed contour needs at least 3", poly.len()),
            ));
        }
        if poly.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::input(
                format!("contour {n} of {what}"),
                "non-finite point",
            ));
        }
        let idx: Vec<[f64; 3]> = poly.iter().map(|&p| grid.patient_to_index(p)).collect();
        let k = idx.iter().map(|q| q[2]).sum::<f64>() / idx.len() as f64;
        let spread = idx.iter().map(|q| (q[2] - k).abs()).fold(0.0, f64::max) * sz;
        if spread > PLANE_TOL_MM {
            return Err(Error::input(
                format!("contour {n} of {what}"),
                format!(
                    "points lie up to {spread:.3} mm off their mean plane along the grid's \
                     slice normal: the contour is not parallel to the grid's slices"
                ),
            ));
        }
        planar.push((k, idx.iter().map(|q| [q[0], q[1]]).collect()));
    }
    planar.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Group into planes.
    let mut planes: Vec<(f64, Vec<Vec<[f64; 2]>>)> = Vec::new();
    for (k, poly) in planar {
        match planes.last_mut() {
            Some((pk, polys)) if (k - *pk).abs() * sz <= PLANE_TOL_MM => polys.push(poly),
            _ => planes.push((k, vec![poly])),
        }
    }
    let mut mask = Volume::filled(grid.clone(), false);
    if planes.is_empty() {
        return Ok(mask);
    }
    let [nx, ny, nz] = grid.dims();
    let data = mask.as_slice_mut();
    let mut xs: Vec<f64> = Vec::new();
    for k in 0..nz {
        let kf = k as f64;
        // Nearest plane (first of equals: deterministic).
        let p = planes.partition_point(|(pk, _)| *pk < kf);
        let candidates = [p.checked_sub(1), (p < planes.len()).then_some(p)];
        let Some(best) = candidates.into_iter().flatten().min_by(|&a, &b| {
            (planes[a].0 - kf)
                .abs()
                .total_cmp(&(planes[b].0 - kf).abs())
        }) else {
            continue;
        };
        if (planes[best].0 - kf).abs() > reach + 1e-9 {
            continue;
        }
        let polys = &planes[best].1;
        for j in 0..ny {
            let y = j as f64;
            xs.clear();
            for poly in polys {
                let m = poly.len();
                for e in 0..m {
                    let a = poly[e];
                    let b = poly[(e + 1) % m];
                    if (a[1] > y) != (b[1] > y) {
                        xs.push(a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
                    }
                }
            }
            xs.sort_by(f64::total_cmp);
            let row = &mut data[(k * ny + j) * nx..(k * ny + j + 1) * nx];
            for pair in xs.chunks_exact(2) {
                let lo = pair[0].ceil().max(0.0);
                let hi = pair[1].ceil().min(nx as f64);
                if lo < hi {
                    for v in &mut row[lo as usize..hi as usize] {
                        *v = !*v;
                    }
                }
            }
        }
    }
    Ok(mask)
}

/// A directed segment between two edge midpoints (doubled index units).
type Segment = ((i64, i64), (i64, i64));

/// Closed contours of slice `k` of a mask, as polygons in patient
/// coordinates (marching squares, see the module docs). Outer boundaries
/// run counter-clockwise and holes clockwise in the grid's `(i, j)` frame.
pub fn contours_of_slice(mask: &Volume<bool>, k: usize) -> Vec<Vec<PointMm>> {
    let grid = mask.grid();
    let [nx, ny, nz] = grid.dims();
    if k >= nz {
        return Vec::new();
    }
    let at = |i: i64, j: i64| -> bool {
        i >= 0
            && j >= 0
            && (i as usize) < nx
            && (j as usize) < ny
            && mask.as_slice()[(k * ny + j as usize) * nx + i as usize]
    };
    // Segments between edge midpoints in doubled index coordinates, oriented
    // with the inside on the left.
    let mut next: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for j in -1..ny as i64 {
        for i in -1..nx as i64 {
            let (a, b, c, d) = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1));
            let s = (2 * i + 1, 2 * j);
            let e = (2 * i + 2, 2 * j + 1);
            let n = (2 * i + 1, 2 * j + 2);
            let w = (2 * i, 2 * j + 1);
            let segs: &[Segment] = match (a, b, c, d) {
                (false, false, false, false) | (true, true, true, true) => &[],
                (true, false, false, false) => &[(s, w)],
                (false, true, false, false) => &[(e, s)],
                (false, false, true, false) => &[(n, e)],
                (false, false, false, true) => &[(w, n)],
                (true, true, false, false) => &[(e, w)],
                (false, true, true, false) => &[(n, s)],
                (false, false, true, true) => &[(w, e)],
                (true, false, false, true) => &[(s, n)],
                (false, true, true, true) => &[(w, s)],
                (true, false, true, true) => &[(s, e)],
                (true, true, false, true) => &[(e, n)],
                (true, true, true, false) => &[(n, w)],
                // Saddles: the inside diagonal is joined.
                (true, false, true, false) => &[(s, e), (n, w)],
                (false, true, false, true) => &[(w, s), (e, n)],
            };
            for &(p, q) in segs {
                next.insert(p, q);
            }
        }
    }
    let mut loops = Vec::new();
    while let Some((&start, _)) = next.iter().next() {
        let mut pts = vec![start];
        let mut cur = next.remove(&start).expect("start is a key");
        while cur != start {
            pts.push(cur);
            match next.remove(&cur) {
                Some(n) => cur = n,
                None => break, // cannot happen for a consistent segment set
            }
        }
        let pts = drop_collinear(pts);
        if pts.len() >= 3 {
            loops.push(
                pts.into_iter()
                    .map(|(x, y)| grid.index_to_patient([x as f64 / 2.0, y as f64 / 2.0, k as f64]))
                    .collect(),
            );
        }
    }
    loops
}

fn drop_collinear(pts: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let n = pts.len();
    if n < 4 {
        return pts;
    }
    let keep: Vec<bool> = (0..n)
        .map(|m| {
            let p = pts[(m + n - 1) % n];
            let q = pts[m];
            let r = pts[(m + 1) % n];
            (q.0 - p.0) * (r.1 - q.1) - (q.1 - p.1) * (r.0 - q.0) != 0
        })
        .collect();
    pts.into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grid(nx: usize, ny: usize, nz: usize) -> Grid {
        Grid::new([nx, ny, nz], [1.0, 2.0, 3.0], [10.0, -5.0, 30.0]).unwrap()
    }

    #[test]
    fn square_with_hole_and_island() {
        let g = grid(20, 20, 1);
        let z = 30.0;
        // Index-space rectangle [lo - 1/2, hi + 1/2] -> patient mm.
        let rect = |lo: [f64; 2], hi: [f64; 2]| -> Vec<PointMm> {
            [
                [lo[0] - 0.5, lo[1] - 0.5],
                [hi[0] + 0.5, lo[1] - 0.5],
                [hi[0] + 0.5, hi[1] + 0.5],
                [lo[0] - 0.5, hi[1] + 0.5],
            ]
            .iter()
            .map(|q| {
                let p = g.index_to_patient([q[0], q[1], 0.0]);
                [p[0], p[1], z]
            })
            .collect()
        };
        let outer = rect([2.0, 2.0], [11.0, 11.0]); // 10 x 10
        let hole = rect([5.0, 5.0], [7.0, 7.0]); // 3 x 3
        let island = rect([15.0, 15.0], [16.0, 17.0]); // 2 x 3
        let m = rasterize(&[outer, hole, island], &g, "test", None).unwrap();
        let count = m.as_slice().iter().filter(|&&b| b).count();
        assert_eq!(count, 100 - 9 + 6);
        assert!(m[[2, 2, 0]] && m[[11, 11, 0]] && !m[[12, 11, 0]] && !m[[1, 2, 0]]);
        assert!(!m[[6, 6, 0]] && m[[4, 6, 0]] && m[[16, 17, 0]]);
    }

    #[test]
    fn boundary_rule_is_half_open() {
        let g = grid(10, 10, 1);
        // A polygon whose edges pass through voxel centres at i = 2 and i = 5,
        // j = 1 and j = 4: centres on the low edges are in, on the high edges out.
        let poly: Vec<PointMm> = [[2.0, 1.0], [5.0, 1.0], [5.0, 4.0], [2.0, 4.0]]
            .iter()
            .map(|q| g.index_to_patient([q[0], q[1], 0.0]))
            .collect();
        let m = rasterize(&[poly], &g, "edge", None).unwrap();
        assert!(m[[2, 1, 0]] && m[[4, 3, 0]]);
        assert!(!m[[5, 2, 0]] && !m[[3, 4, 0]]);
        assert_eq!(m.as_slice().iter().filter(|&&b| b).count(), 9);
    }

    #[test]
    fn contour_stack_fills_its_slab() {
        // Contours every 3 slices (9 mm) fill +-1 slice around each plane.
        let g = grid(8, 8, 10);
        let poly = |k: f64| -> Vec<PointMm> {
            [[1.5, 1.5], [5.5, 1.5], [5.5, 5.5], [1.5, 5.5]]
                .iter()
                .map(|q| g.index_to_patient([q[0], q[1], k]))
                .collect()
        };
        let m = rasterize(&[poly(3.0), poly(6.0)], &g, "stack", Some(9.0)).unwrap();
        let filled: Vec<bool> = (0..10).map(|k| m[[3, 3, k]]).collect();
        assert_eq!(
            filled,
            vec![
                false, false, true, true, true, true, true, true, false, false
            ]
        );
    }

    #[test]
    fn tilted_contour_is_refused() {
        let g = grid(8, 8, 4);
        let poly = vec![[10.0, -5.0, 30.0], [15.0, -5.0, 31.0], [15.0, 5.0, 32.0]];
        assert!(matches!(
            rasterize(&[poly], &g, "tilted", None),
            Err(Error::InvalidInput { .. })
        ));
    }

    proptest! {
        #[test]
        fn contours_of_a_mask_rasterize_back_to_it(bits in proptest::collection::vec(any::<bool>(), 7 * 6 * 3)) {
            let g = grid(7, 6, 3);
            let mask = Volume::from_vec(g.clone(), bits).unwrap();
            let mut polys = Vec::new();
            for k in 0..3 {
                polys.extend(contours_of_slice(&mask, k));
            }
            let back = rasterize(&polys, &g, "roundtrip", None).unwrap();
            prop_assert_eq!(back.as_slice(), mask.as_slice());
        }
    }
}
