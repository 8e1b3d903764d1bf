"""Bearer-token authentication (Keycloak-shaped OIDC JWTs) and authorization."""
