//! Unit tests of the OpenID Provider's use cases against mocked stores.
