//! Messages: validation of what clients send.

use crate::base::error::ApiError;

/// Most characters in a message.
pub const MAX_CONTENT_CHARS: usize = 65536;
/// Most characters in a `client_msg_id`.
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// Checks message content; counts characters, not bytes.
pub fn check_content(content: &str) -> Result<(), ApiError> {
    if content.is_empty() {
        return Err(ApiError::Validation(vec![
            "content must not be empty".into(),
        ]));
    }
    if content.contains('\0') {
        return Err(ApiError::BadRequest(
            "invalid_payload",
            "content must not contain the NUL character (\\u0000)".into(),
        ));
    }
    // Cheap upper bound first: a string of at most N bytes has at most N chars.
    if content.len() > MAX_CONTENT_CHARS && content.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::TooLarge(
            "content must be at most 65536 characters",
        ));
    }
    Ok(())
}

/// Checks a client-chosen idempotency key.
pub fn check_client_msg_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID || id.contains('\0') {
        return Err(ApiError::BadRequest(
            "invalid_payload",
            "client_msg_id must be 1 to 64 characters, without NUL".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_limits_count_chars() {
        assert!(check_content("").is_err());
        assert!(check_content(&"é".repeat(MAX_CONTENT_CHARS)).is_ok());
        let too_long = "a".repeat(MAX_CONTENT_CHARS + 1);
        assert_eq!(
            check_content(&too_long).unwrap_err().code(),
            "message_too_long"
        );
        assert!(check_client_msg_id(&"x".repeat(65)).is_err());
        assert!(check_client_msg_id("abc").is_ok());
        assert_eq!(check_content("a\0b").unwrap_err().code(), "invalid_payload");
        assert!(check_client_msg_id("a\0").is_err());
    }
}
