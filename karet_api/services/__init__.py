"""Services the routes call: things that need both HTTP-facing decisions and the domain."""
