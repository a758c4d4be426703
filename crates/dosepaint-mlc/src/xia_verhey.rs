//! Xia & Verhey (1998): leaf sequencing by reducing intensity levels.
//!
//! At iteration k, with `L_k` the largest residual level, the delivery unit
//! is `d_k = 2^(m - 1)` with `m = max(1, floor(log2 L_k))` (Xia & Verhey,
//! Med Phys 25:1424, eqs. 5-7). The opening matrix is `R >= d_k`; in each
//! row one run of open bixels is delivered, the run holding the row's
//! largest residual, with weight `d_k`.

use crate::constrained::{Cand, choose};
use crate::params::Parking;
use crate::schedule::{Ctx, sweep_segments};
use crate::segment::{Segment, place_closed};

pub(crate) fn xia_verhey(ctx: &Ctx, levels: &[u32], parking: Parking) -> Vec<Segment> {
    let (m, n) = (ctx.n_rows, ctx.n_cols);
    let mut res: Vec<i64> = levels.iter().map(|&l| i64::from(l)).collect();
    let constrained = ctx.icc || ctx.tg;
    let mut segs = Vec::new();
    loop {
        let lk = res.iter().copied().max().unwrap_or(0);
        if lk <= 0 {
            break;
        }
        let mexp = (63 - lk.leading_zeros() as i64).max(1);
        let d = 1i64 << (mexp - 1);
        let mut seg = Segment {
            left: vec![0; m],
            right: vec![0; m],
            weight: d as u32,
        };
        if constrained {
            let cands: Vec<Vec<Cand>> = (0..m)
                .map(|i| {
                    let row = &res[i * n..(i + 1) * n];
                    let rmax = row.iter().copied().max().unwrap_or(0);
                    let mut c = vec![Cand {
                        l: 0,
                        r: 0,
                        score: 0.0,
                    }];
                    let mut j = 0;
                    while j < n {
                        if row[j] < d {
                            j += 1;
                            continue;
                        }
                        let s = j;
                        while j < n && row[j] >= d {
                            j += 1;
                        }
                        let has_max = row[s..j].contains(&rmax);
                        c.push(Cand {
                            l: s,
                            r: j,
                            score: if has_max { 2.0 } else { 1.0 },
                        });
                    }
                    c
                })
                .collect();
            let pick = choose(ctx, &res, d, &cands);
            match pick {
                Some(p)
                    if p.iter()
                        .enumerate()
                        .any(|(i, &c)| cands[i][c].l < cands[i][c].r) =>
                {
                    for (i, &c) in p.iter().enumerate() {
                        seg.left[i] = cands[i][c].l;
                        seg.right[i] = cands[i][c].r;
                    }
                }
                _ => {
                    // No admissible segment of weight d: deliver the first
                    // segment of the constrained sweep of the residual.
                    seg = sweep_segments(ctx, &res, true)
                        .pop()
                        .expect("a non-zero residual has a first sweep segment");
                }
            }
        } else {
            for i in 0..m {
                let row = &res[i * n..(i + 1) * n];
                let (mut jmax, mut vmax) = (0, row[0]);
                for (j, &v) in row.iter().enumerate() {
                    if v > vmax {
                        (jmax, vmax) = (j, v);
                    }
                }
                if vmax < d {
                    continue;
                }
                let mut l = jmax;
                while l > 0 && row[l - 1] >= d {
                    l -= 1;
                }
                let mut r = jmax + 1;
                while r < n && row[r] >= d {
                    r += 1;
                }
                seg.left[i] = l;
                seg.right[i] = r;
            }
        }
        let w = i64::from(seg.weight);
        for i in 0..m {
            for j in seg.left[i]..seg.right[i].max(seg.left[i]) {
                res[i * n + j] -= w;
            }
        }
        place_closed(&mut seg, n, parking, ctx.icc);
        segs.push(seg);
    }
    segs
}
