//! Body decoding shared by the transports: media types, content encodings, size caps.

use super::IngestError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::Read;

/// The encodings of an OTLP body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// Parses a Content-Type header as a media type: parameters (`; charset=utf-8`) and case are
/// ignored. A missing header is taken as protobuf, the OTLP/HTTP default.
pub fn media_type(content_type: Option<&str>) -> Result<Encoding, IngestError> {
    let Some(value) = content_type else {
        return Ok(Encoding::Protobuf);
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf" => {
            Ok(Encoding::Protobuf)
        }
        "application/json" => Ok(Encoding::Json),
        _ => Err(IngestError::UnsupportedMediaType(value.to_string())),
    }
}

/// Decodes an (inflated) traces body; use [`super::Ingest::decode`], which bounds what this
/// allocates.
pub fn traces(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| IngestError::Malformed(format!("invalid protobuf: {e}"))),
        Encoding::Json => super::json::decode_traces(body).map_err(IngestError::Malformed),
    }
}

/// Undoes `Content-Encoding` (identity or gzip), refusing to inflate past `limit` bytes: a
/// gzip bomb stops at the cap instead of using the memory.
pub fn inflate<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, IngestError> {
    let encoding = content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > limit {
                return Err(IngestError::TooLarge { limit });
            }
            Ok(std::borrow::Cow::Borrowed(body))
        }
        "gzip" | "x-gzip" => gunzip(body, limit).map(std::borrow::Cow::Owned),
        other => Err(IngestError::UnsupportedEncoding(other.to_string())),
    }
}

fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let decoder = flate2::read::MultiGzDecoder::new(body);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // Read one byte past the limit so that "exactly the limit" is accepted.
    let read = decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Malformed(format!("invalid gzip body: {e}")))?;
    if read > limit {
        return Err(IngestError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn media_types_are_parsed() {
        assert_eq!(
            media_type(Some("application/json; charset=utf-8")).unwrap(),
            Encoding::Json
        );
        assert_eq!(
            media_type(Some("Application/X-Protobuf")).unwrap(),
            Encoding::Protobuf
        );
        assert_eq!(media_type(None).unwrap(), Encoding::Protobuf);
        assert!(matches!(
            media_type(Some("text/plain")),
            Err(IngestError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn gzip_is_capped_on_the_inflated_size() {
        let data = vec![b'a'; 10_000];
        let packed = gzip(&data);
        assert_eq!(
            &inflate(&packed, Some("gzip"), 10_000).unwrap()[..],
            &data[..]
        );
        assert!(matches!(
            inflate(&packed, Some("gzip"), 9_999),
            Err(IngestError::TooLarge { .. })
        ));
        assert!(matches!(
            inflate(b"not gzip", Some("gzip"), 100),
            Err(IngestError::Malformed(_))
        ));
        assert!(matches!(
            inflate(b"x", Some("br"), 100),
            Err(IngestError::UnsupportedEncoding(_))
        ));
    }
}
