//! Thumbnails of uploaded raster images (PNG, JPEG, GIF, WebP), made on the worker that
//! stored the upload, right after its commit (never on an event loop), and kept in
//! `file_thumbnails` beside the file so that every node serves them.
//!
//! Every image is hostile until decoded: its header is read first and an image over
//! [`MAX_SIDE`] a side or [`MAX_PIXELS`] in all is refused before a pixel is decoded
//! (a PNG of a few hundred bytes may claim 100,000 x 100,000 pixels); the decoder also
//! runs under `image::Limits` ([`MAX_ALLOC`]), and a panic in it is caught. Whatever
//! goes wrong, the upload stays stored as a plain file: [`make`] never fails, it only
//! leaves `has_thumbnail` false.
//!
//! A thumbnail's longest side is at most `files.thumbnail_px` (smaller images keep their
//! size; none is enlarged), turned upright by the JPEG's EXIF orientation, and encoded
//! as JPEG (quality [`JPEG_QUALITY`]) when every pixel is opaque, which is several times
//! smaller than PNG for photos, or as PNG when any pixel is transparent (JPEG has no
//! alpha). Metadata (EXIF, location) is not copied.

use crate::base::error::ApiError;
use crate::chat::files::{self, File};
use crate::pg::pool::Worker;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Longest side decoded, pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most pixels decoded (a 50-megapixel photo; above, no thumbnail).
pub const MAX_PIXELS: u64 = 50_000_000;
/// Most bytes the decoder may allocate (a 50-megapixel RGB image is 150 MB).
pub const MAX_ALLOC: u64 = 256 << 20;
/// Largest file read to make a thumbnail.
pub const MAX_SOURCE_BYTES: i64 = 64 << 20;
/// JPEG quality of opaque thumbnails.
pub const JPEG_QUALITY: u8 = 80;

/// No thumbnail of this file: not an image, or one that did not decode within limits.
pub const THUMBNAIL_NOT_FOUND: ApiError =
    ApiError::NotFound("thumbnail_not_found", "This file has no thumbnail");

/// A made thumbnail.
#[derive(Debug)]
pub struct Thumb {
    /// `image/jpeg` or `image/png`.
    pub mime: &'static str,
    /// Its width, pixels.
    pub width: u32,
    /// Its height, pixels.
    pub height: u32,
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// The source's size as shown (after its orientation), pixels.
    pub source: (u32, u32),
}

/// The decoder of a detected type, `None` for a type without thumbnails.
fn format_of(mime: &str) -> Option<ImageFormat> {
    Some(match mime {
        "image/png" => ImageFormat::Png,
        "image/jpeg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        _ => return None,
    })
}

/// The size of a thumbnail of a `w` x `h` image whose longest side is at most `px`.
pub fn fit(w: u32, h: u32, px: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= px {
        return (w, h);
    }
    let scale =
        |v: u32| ((u64::from(v) * u64::from(px) + u64::from(long) / 2) / u64::from(long)).max(1);
    (scale(w) as u32, scale(h) as u32)
}

/// Decodes `bytes` (of detected type `mime`) within the limits and makes its thumbnail;
/// the error says why not (for the log).
pub fn render(mime: &str, bytes: &[u8], px: u32) -> Result<Thumb, String> {
    let format = format_of(mime).ok_or("not a raster image")?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    // Reads the header only, and refuses a side over the limits.
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS || decoder.total_bytes() > MAX_ALLOC {
        return Err(format!("{w} x {h} pixels is over the limits"));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    let source = (img.width(), img.height());
    let (tw, th) = fit(img.width(), img.height(), px);
    let small = img.thumbnail_exact(tw, th);
    drop(img);
    let mut out = Vec::new();
    let opaque = !small.color().has_alpha() || small.to_rgba8().pixels().all(|p| p.0[3] == 255);
    let mime = if opaque {
        let rgb = DynamicImage::ImageRgb8(small.to_rgb8());
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
        rgb.write_with_encoder(enc).map_err(|e| e.to_string())?;
        "image/jpeg"
    } else {
        let rgba = DynamicImage::ImageRgba8(small.to_rgba8());
        let enc = image::codecs::png::PngEncoder::new(&mut out);
        rgba.write_with_encoder(enc).map_err(|e| e.to_string())?;
        "image/png"
    };
    Ok(Thumb {
        mime,
        width: tw,
        height: th,
        bytes: out,
        source,
    })
}

/// [`render`], with a panic of a decoder caught (a bug there must cost one thumbnail,
/// not the answer to the upload).
fn render_safely(mime: &str, bytes: &[u8], px: u32) -> Result<Thumb, String> {
    std::panic::catch_unwind(|| render(mime, bytes, px))
        .unwrap_or_else(|_| Err("the decoder panicked".into()))
}

/// Reads a stored file's bytes whole (for an image of at most [`MAX_SOURCE_BYTES`]).
fn bytes_of(w: &mut Worker, file: &File) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(file.size as usize);
    let rows = w.client()?.query(
        "SELECT data FROM file_chunks WHERE file_id = $1 ORDER BY n",
        &[&file.id],
    )?;
    for r in rows {
        out.extend_from_slice(r.get::<_, &[u8]>(0));
    }
    Ok(out)
}

/// Makes and stores the thumbnail of a just-stored upload when it is a raster image
/// that decodes within the limits, and returns the file as it now is (`has_thumbnail`,
/// and its size as shown when the header parsed). Never fails: a file that gets no
/// thumbnail is returned as it came (the reason is logged).
pub fn make(w: &mut Worker, file: File, px: u32) -> File {
    if format_of(file.mime).is_none() || file.has_thumbnail {
        return file;
    }
    if file.size > MAX_SOURCE_BYTES {
        log::info!("no thumbnail of file {}: {} bytes", file.id, file.size);
        return file;
    }
    let thumb = match bytes_of(w, &file) {
        Ok(bytes) => render_safely(file.mime, &bytes, px),
        Err(e) => Err(e.to_string()),
    };
    let thumb = match thumb {
        Ok(t) => t,
        Err(why) => {
            log::info!("no thumbnail of file {} ({}): {why}", file.id, file.mime);
            return file;
        }
    };
    match store(w, &file, &thumb) {
        Ok(Some(row)) => files::from_row(&row),
        Ok(None) => file,
        Err(e) => {
            log::warn!("storing the thumbnail of file {} failed: {e}", file.id);
            file
        }
    }
}

/// Stores `t` as the thumbnail of `file` and records the size the image shows at, in
/// one transaction; the file's row after it (`None`: the file was deleted meanwhile).
fn store(w: &mut Worker, file: &File, t: &Thumb) -> Result<Option<postgres::Row>, ApiError> {
    let mut tx = w.client()?.transaction()?;
    let (sw, sh) = (t.source.0 as i32, t.source.1 as i32);
    let updated = tx.execute(
        "UPDATE files SET width = $2, height = $3 WHERE id = $1",
        &[&file.id, &sw, &sh],
    )?;
    if updated == 0 {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO file_thumbnails (file_id, mime, width, height, bytes)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (file_id) DO NOTHING",
        &[
            &file.id,
            &t.mime,
            &(t.width as i32),
            &(t.height as i32),
            &t.bytes,
        ],
    )?;
    // Read after the insert: the row's has_thumbnail is the table's.
    let row = tx.query_opt(
        concat!(
            "SELECT ",
            crate::pg::files::file_columns!(),
            " FROM files WHERE id = $1"
        ),
        &[&file.id],
    )?;
    tx.commit()?;
    Ok(row)
}

/// A file's thumbnail for a reader allowed to download the file (asked by
/// `files::open` before): its type and bytes, or `thumbnail_not_found`.
pub fn read(w: &mut Worker, file: &File) -> Result<(&'static str, Vec<u8>), ApiError> {
    let row = w.client()?.query_opt(
        "SELECT mime, bytes FROM file_thumbnails WHERE file_id = $1",
        &[&file.id],
    )?;
    let row = row.ok_or(THUMBNAIL_NOT_FOUND)?;
    let mime = if row.get::<_, &str>(0) == "image/png" {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok((mime, row.get(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn sizes_fit_without_enlarging() {
        assert_eq!(fit(1000, 500, 320), (320, 160));
        assert_eq!(fit(500, 1000, 320), (160, 320));
        assert_eq!(fit(100, 50, 320), (100, 50));
        assert_eq!(fit(10_000, 1, 320), (320, 1));
    }

    #[test]
    fn opaque_photos_become_jpeg_and_transparent_images_png() {
        let photo = DynamicImage::ImageRgb8(image::RgbImage::from_fn(800, 600, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        }));
        let t = render("image/png", &encoded(photo, ImageFormat::Png), 320).unwrap();
        assert_eq!((t.mime, t.width, t.height), ("image/jpeg", 320, 240));
        assert_eq!(t.source, (800, 600));
        assert!(t.bytes.starts_with(&[0xff, 0xd8, 0xff]));
        let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(64, 640, |x, _| {
            image::Rgba([200, 10, 10, (x * 4) as u8])
        }));
        let t = render("image/png", &encoded(clear, ImageFormat::Png), 320).unwrap();
        assert_eq!((t.mime, t.width, t.height), ("image/png", 32, 320));
        assert!(t.bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn bombs_and_garbage_are_refused_without_decoding() {
        // A valid PNG header claiming 100,000 x 100,000 pixels, then nothing.
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bomb.extend(100_000u32.to_be_bytes());
        bomb.extend(100_000u32.to_be_bytes());
        bomb.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(render("image/png", &bomb, 320).is_err());
        // Within a side, over the pixel count.
        let mut wide = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        wide.extend(16_000u32.to_be_bytes());
        wide.extend(16_000u32.to_be_bytes());
        wide.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(render("image/png", &wide, 320).is_err());
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0, 16];
        jpeg.extend(std::iter::repeat_n(0x41, 300));
        assert!(render("image/jpeg", &jpeg, 320).is_err());
        assert!(render("image/webp", b"RIFF\0\0\0\0WEBPVP8 garbage", 320).is_err());
        assert!(render("image/gif", b"GIF89a", 320).is_err());
        assert!(render("application/pdf", b"%PDF-1.7", 320).is_err());
    }
}
