"""HTTP views (blueprints), request parsing, problem details and the OpenAPI document."""
