//! Integer apertures (segments) and decompositions, and their conversion to
//! core's [`Aperture`] in mm.

use dosepaint_core::Aperture;
use serde::{Deserialize, Serialize};

use crate::params::{LeafGeometry, Parking};

/// One aperture on the bixel grid: for every row the left and right leaf
/// tips as bixel-edge indices (`0..=n_cols`; edge `k` lies between columns
/// `k - 1` and `k`), and a weight in levels. Row `r` exposes the columns
/// `left[r]..right[r]`; `left[r] == right[r]` is a closed pair meeting at
/// that edge (edge 0 or `n_cols` means parked at the field edge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Left leaf tip per row, bixel-edge index.
    pub left: Vec<usize>,
    /// Right leaf tip per row, bixel-edge index (`>= left`).
    pub right: Vec<usize>,
    /// Weight in levels (monitor units = `weight * step`).
    pub weight: u32,
}

impl Segment {
    /// Whether bixel (`row`, `col`) is exposed.
    pub fn is_open(&self, row: usize, col: usize) -> bool {
        self.left[row] <= col && col < self.right[row]
    }

    /// Whether no bixel is exposed.
    pub fn is_closed(&self) -> bool {
        self.left.iter().zip(&self.right).all(|(l, r)| l >= r)
    }

    /// The aperture in mm (leaf tips on bixel edges) with weight
    /// `weight * step`. Closed pairs at edge 0 or `n_cols` keep a gap of
    /// `min_gap_mm` outside the field (`[x_lo - g, x_lo]` or
    /// `[x_hi, x_hi + g]`); elsewhere they meet (the sequencer only puts them
    /// there without a gap).
    pub fn to_aperture(&self, geometry: &LeafGeometry, min_gap_mm: f64, step: f64) -> Aperture {
        let n = geometry.grid.n_cols;
        let mut left_mm = Vec::with_capacity(self.left.len());
        let mut right_mm = Vec::with_capacity(self.left.len());
        for (&l, &r) in self.left.iter().zip(&self.right) {
            if l < r {
                left_mm.push(geometry.edge_mm(l));
                right_mm.push(geometry.edge_mm(r));
            } else if l == 0 {
                left_mm.push(geometry.x_lo() - min_gap_mm);
                right_mm.push(geometry.x_lo());
            } else if l >= n {
                left_mm.push(geometry.x_hi());
                right_mm.push(geometry.x_hi() + min_gap_mm);
            } else {
                debug_assert!(min_gap_mm <= 0.0, "closed pair inside the field with a gap");
                left_mm.push(geometry.edge_mm(l));
                right_mm.push(geometry.edge_mm(l) + min_gap_mm);
            }
        }
        Aperture {
            left_mm,
            right_mm,
            weight: f64::from(self.weight) * step,
        }
    }
}

/// A step-and-shoot decomposition of a [`LevelMap`](crate::LevelMap) into
/// integer segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decomposition {
    /// Number of rows of the map.
    pub n_rows: usize,
    /// Number of columns of the map.
    pub n_cols: usize,
    /// The segments in delivery order.
    pub segments: Vec<Segment>,
    /// The lower bound of the total monitor units (levels) of the map.
    pub lower_bound: u64,
}

impl Decomposition {
    /// Number of segments.
    pub fn n_segments(&self) -> usize {
        self.segments.len()
    }

    /// Total monitor units in levels: the sum of segment weights.
    pub fn total_mu(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.weight)).sum()
    }

    /// The levels delivered: `sum_s weight_s * open_s`, row-major.
    pub fn delivered_levels(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.n_rows * self.n_cols];
        for s in &self.segments {
            for r in 0..self.n_rows {
                for c in s.left[r]..s.right[r].max(s.left[r]) {
                    out[r * self.n_cols + c] += u64::from(s.weight);
                }
            }
        }
        out
    }
}

/// Puts the closed rows of a segment (those with `left == right`) at their
/// parking edge. Without the interleaf collision constraint that is the
/// preferred edge; with it, every run of consecutive closed rows meets at one
/// edge inside the openings of its open neighbours (which the caller made
/// overlap), as near the preferred edge as allowed.
pub(crate) fn place_closed(seg: &mut Segment, n_cols: usize, parking: Parking, icc: bool) {
    let pref = match parking {
        Parking::Right => n_cols,
        Parking::Left => 0,
        Parking::Centre => n_cols / 2,
    };
    let m = seg.left.len();
    let open = |s: &Segment, r: usize| s.left[r] < s.right[r];
    let mut r = 0;
    while r < m {
        if open(seg, r) {
            r += 1;
            continue;
        }
        let start = r;
        while r < m && !open(seg, r) {
            r += 1;
        }
        let (mut lo, mut hi) = (0, n_cols);
        if icc {
            for nb in [start.checked_sub(1), (r < m).then_some(r)]
                .into_iter()
                .flatten()
            {
                lo = lo.max(seg.left[nb]);
                hi = hi.min(seg.right[nb]);
            }
        }
        debug_assert!(lo <= hi, "open neighbours of a closed run do not overlap");
        let p = pref.clamp(lo, hi.max(lo));
        for k in start..r {
            seg.left[k] = p;
            seg.right[k] = p;
        }
    }
}
