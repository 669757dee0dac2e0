//! The Refract guest SDK.
