//! `multipart/form-data` bodies built in memory, so a request can be re-sent on retry and tests can
//! parse exactly what goes on the wire.

use bytes::Bytes;
use rand::Rng;

/// One part of a multipart body.
#[derive(Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

impl std::fmt::Debug for Part {
    // Part data may hold code or secrets: only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("len", &self.data.len())
            .finish()
    }
}

/// An encoded body plus its boundary.
#[derive(Clone)]
pub struct MultipartBody {
    boundary: String,
    body: Bytes,
}

impl std::fmt::Debug for MultipartBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartBody").field("boundary", &self.boundary).field("len", &self.body.len()).finish()
    }
}

impl MultipartBody {
    /// Encode `parts` with a random boundary that occurs in none of them.
    pub fn encode(parts: &[Part]) -> Self {
        let mut rng = rand::rng();
        loop {
            let boundary = format!("----clodo-formdata-{:032x}", rng.random::<u128>());
            if !parts.iter().any(|p| contains(&p.data, boundary.as_bytes())) {
                return Self::encode_with_boundary(parts, boundary);
            }
        }
    }

    fn encode_with_boundary(parts: &[Part], boundary: String) -> Self {
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.data.len() + 200).sum::<usize>() + 64);
        for p in parts {
            buf.extend_from_slice(b"--");
            buf.extend_from_slice(boundary.as_bytes());
            buf.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
            buf.extend_from_slice(escape(&p.name).as_bytes());
            buf.push(b'"');
            if let Some(f) = &p.filename {
                buf.extend_from_slice(b"; filename=\"");
                buf.extend_from_slice(escape(f).as_bytes());
                buf.push(b'"');
            }
            buf.extend_from_slice(b"\r\n");
            if let Some(ct) = &p.content_type {
                buf.extend_from_slice(b"Content-Type: ");
                buf.extend_from_slice(ct.replace(['\r', '\n'], "").as_bytes());
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(b"\r\n");
            buf.extend_from_slice(&p.data);
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b"--");
        buf.extend_from_slice(boundary.as_bytes());
        buf.extend_from_slice(b"--\r\n");
        Self { boundary, body: Bytes::from(buf) }
    }

    /// Value for the `Content-Type` header.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    pub fn bytes(&self) -> &Bytes {
        &self.body
    }
}

/// Quote-safe header parameter (same escaping as browsers and reqwest): `"` and line breaks are
/// percent-encoded.
fn escape(s: &str) -> String {
    s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, filename: Option<&str>, ct: Option<&str>, data: &str) -> Part {
        Part {
            name: name.into(),
            filename: filename.map(Into::into),
            content_type: ct.map(Into::into),
            data: Bytes::from(data.to_string()),
        }
    }

    #[test]
    fn exact_wire_format() {
        let body = MultipartBody::encode_with_boundary(
            &[part("metadata", None, Some("application/json"), "{}"), part("a\"b.js", Some("a\"b.js"), None, "x")],
            "B".into(),
        );
        assert_eq!(body.content_type(), "multipart/form-data; boundary=B");
        let text = String::from_utf8(body.bytes().to_vec()).unwrap();
        assert_eq!(
            text,
            "--B\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{}\r\n\
             --B\r\nContent-Disposition: form-data; name=\"a%22b.js\"; filename=\"a%22b.js\"\r\n\r\nx\r\n--B--\r\n"
        );
    }

    #[test]
    fn boundary_avoids_part_content() {
        let b = MultipartBody::encode(&[part("x", None, None, "hello")]);
        assert!(b.boundary().starts_with("----clodo-formdata-"));
        assert!(!contains(b"hello", b.boundary().as_bytes()));
        assert!(contains(b"abc", b"") && contains(b"abc", b"bc") && !contains(b"abc", b"cd"));
        assert!(format!("{:?}", part("s", None, None, "secret")).contains("len: 6"));
        assert!(!format!("{:?}", part("s", None, None, "secret")).contains("secret"));
    }
}
