//! Pictures for the HTML report without a plotting dependency: PNG images of
//! dose-wash slices (encoded here: zlib via `flate2`, CRC via `crc32fast`)
//! and SVG line charts for DVHs and QVHs.

use std::fmt::Write as _;
use std::io::Write as _;

use dosepaint_core::{Grid, Volume};

/// An RGB image, row-major, 3 bytes per pixel.
pub(crate) struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgb {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![0; width * height * 3],
        }
    }

    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        let at = (y * self.width + x) * 3;
        self.pixels[at..at + 3].copy_from_slice(&c);
    }

    /// Encodes as PNG (8-bit RGB, no interlace, filter 0 on every row).
    pub fn to_png(&self) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = crc32fast::Hasher::new();
            crc.update(&kind);
            crc.update(data);
            out.extend_from_slice(&kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.finalize().to_be_bytes());
        }
        let mut raw = Vec::with_capacity(self.height * (self.width * 3 + 1));
        for row in self.pixels.chunks(self.width * 3) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).expect("writing to a Vec cannot fail");
        let idat = z.finish().expect("writing to a Vec cannot fail");
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&(self.width as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.height as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut out = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
        chunk(&mut out, *b"IHDR", &ihdr);
        chunk(&mut out, *b"IDAT", &idat);
        chunk(&mut out, *b"IEND", &[]);
        out
    }

    /// `data:` URI of the PNG, for an `<img>` in a self-contained page.
    pub fn to_data_uri(&self) -> String {
        format!("data:image/png;base64,{}", base64(&self.to_png()))
    }
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A jet-like colour map from 0 (blue) to 1 (red).
pub(crate) fn colormap(t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * t - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * t - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * t - 1.0).abs()).clamp(0.0, 1.0);
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

/// Which plane to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }

    /// Grid axes shown horizontally and vertically, and the axis cut.
    fn axes(self) -> (usize, usize, usize) {
        match self {
            Plane::Axial => (0, 1, 2),
            Plane::Coronal => (0, 2, 1),
            Plane::Sagittal => (1, 2, 0),
        }
    }
}

/// A slice through `(i, j, k)` of a CT in grey with a dose wash (from
/// `wash_min` to `wash_max`, transparent below `wash_min`) and contour
/// outlines; every voxel becomes `scale x scale` pixels (with aspect
/// correction for anisotropic spacing on the vertical axis). Superior and
/// anterior are drawn up.
pub(crate) fn dose_wash(
    ct: &Volume<f32>,
    dose: &Volume<f32>,
    contours: &[(&Volume<bool>, [u8; 3])],
    plane: Plane,
    through: [usize; 3],
    wash: (f64, f64),
    scale: usize,
) -> Rgb {
    let grid: &Grid = ct.grid();
    let dims = grid.dims();
    let spacing = grid.spacing_mm();
    let (h, v, cut) = plane.axes();
    let sx = scale;
    let sy = ((scale as f64) * spacing[v] / spacing[h]).round().max(1.0) as usize;
    let (w, ht) = (dims[h] * sx, dims[v] * sy);
    let mut img = Rgb::new(w, ht);
    let voxel = |a: usize, b: usize| {
        let mut idx = [0usize; 3];
        idx[h] = a;
        idx[v] = b;
        idx[cut] = through[cut].min(dims[cut] - 1);
        idx
    };
    // Axial: anterior (low j in LPS) up. Coronal/sagittal: superior (high k) up.
    let flip_vertical = plane != Plane::Axial;
    for b in 0..dims[v] {
        for a in 0..dims[h] {
            let idx = voxel(a, b);
            let hu = f64::from(ct[idx]);
            let grey = (((hu + 400.0) / 1000.0).clamp(0.0, 1.0) * 255.0) as u8;
            let mut c = [grey; 3];
            let d = f64::from(dose[idx]);
            if d >= wash.0 {
                let wc = colormap((d - wash.0) / (wash.1 - wash.0).max(1e-9));
                for ch in 0..3 {
                    c[ch] = ((f64::from(c[ch]) * 0.45) + f64::from(wc[ch]) * 0.55) as u8;
                }
            }
            let row = if flip_vertical { dims[v] - 1 - b } else { b };
            for y in row * sy..(row + 1) * sy {
                for x in a * sx..(a + 1) * sx {
                    img.set(x, y, c);
                }
            }
        }
    }
    // Outlines: a pixel block is on the edge when a 4-neighbour is outside.
    for (mask, colour) in contours {
        for b in 0..dims[v] {
            for a in 0..dims[h] {
                if !mask[voxel(a, b)] {
                    continue;
                }
                let outside = |da: isize, db: isize| {
                    let (na, nb) = (a as isize + da, b as isize + db);
                    na < 0
                        || nb < 0
                        || na >= dims[h] as isize
                        || nb >= dims[v] as isize
                        || !mask[voxel(na as usize, nb as usize)]
                };
                if outside(-1, 0) || outside(1, 0) || outside(0, -1) || outside(0, 1) {
                    let row = if flip_vertical { dims[v] - 1 - b } else { b };
                    let (x0, y0) = (a * sx, row * sy);
                    for x in x0..x0 + sx {
                        img.set(x, y0, *colour);
                        img.set(x, y0 + sy - 1, *colour);
                    }
                    for y in y0..y0 + sy {
                        img.set(x0, y, *colour);
                        img.set(x0 + sx - 1, y, *colour);
                    }
                }
            }
        }
    }
    img
}

/// A fluence map (rows x cols) as a heat map, `scale` pixels per bixel.
pub(crate) fn heat_map(values: &[f64], rows: usize, cols: usize, scale: usize) -> Rgb {
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1e-12);
    let mut img = Rgb::new(cols * scale, rows * scale);
    for r in 0..rows {
        for c in 0..cols {
            let col = colormap(values[r * cols + c] / max);
            for y in r * scale..(r + 1) * scale {
                for x in c * scale..(c + 1) * scale {
                    img.set(x, (rows * scale - 1) - y, col);
                }
            }
        }
    }
    img
}

/// One curve of a line chart.
pub(crate) struct Series<'a> {
    pub label: String,
    pub colour: &'a str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A self-contained SVG line chart with axes, ticks and a legend.
pub(crate) fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    x_max: f64,
    y_max: f64,
) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 380.0, 60.0, 170.0, 30.0, 45.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let px = |x: f64| ml + pw * (x / x_max).clamp(0.0, 1.0);
    let py = |y: f64| mt + ph * (1.0 - (y / y_max).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="18" font-size="13" font-weight="bold">{}</text>"#,
        ml,
        escape(title)
    );
    let _ = write!(
        s,
        r##"<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    for k in 0..=5 {
        let xv = x_max * f64::from(k) / 5.0;
        let yv = y_max * f64::from(k) / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{mt}" x2="{x}" y2="{yb}" stroke="#ddd"/><text x="{x}" y="{ty}" text-anchor="middle">{xl}</text>"##,
            x = px(xv),
            xl = if x_max < 10.0 {
                format!("{xv:.2}")
            } else {
                format!("{xv:.0}")
            },
            yb = mt + ph,
            ty = mt + ph + 14.0
        );
        let _ = write!(
            s,
            r##"<line x1="{ml}" y1="{y}" x2="{xr}" y2="{y}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{yv:.2}</text>"##,
            y = py(yv),
            xr = ml + pw,
            tx = ml - 5.0,
            ty = py(yv) + 4.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        ml + pw / 2.0,
        h - 8.0,
        escape(x_label)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        mt + ph / 2.0,
        escape(y_label)
    );
    for (n, se) in series.iter().enumerate() {
        let mut d = String::new();
        for (m, (x, y)) in se.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if m == 0 { "M" } else { "L" },
                px(*x),
                py(*y)
            );
        }
        let dash = if se.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"#,
            se.colour
        );
        let ly = mt + 12.0 + 15.0 * n as f64;
        let lx = ml + pw + 10.0;
        let _ = write!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            se.colour,
            lx + 27.0,
            ly + 4.0,
            escape(&se.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Escapes text for HTML and SVG.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648, section 10.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn png_has_valid_structure() {
        let img = heat_map(&[0.0, 1.0, 2.0, 3.0], 2, 2, 3);
        let png = img.to_png();
        assert_eq!(
            &png[..8],
            &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']
        );
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 6);
        // Decompress IDAT and check the row count and filter bytes.
        let len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&png[41..41 + len]),
            &mut raw,
        )
        .unwrap();
        assert_eq!(raw.len(), 6 * (6 * 3 + 1));
        assert!(raw.chunks(19).all(|r| r[0] == 0));
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
    }
}
