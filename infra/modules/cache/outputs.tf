output "instance" {
  description = "projects/P/locations/L/instances/I, for cache maintenance."
  value       = google_memorystore_instance.cache.id
}

locals {
  # A non-cluster instance has a primary and a reader endpoint; the product writes, so the primary.
  primary = one([
    for connection in google_memorystore_instance.cache.endpoints[0].connections : connection.psc_auto_connection[0]
    if connection.psc_auto_connection[0].connection_type == "CONNECTION_TYPE_PRIMARY"
  ])
}

output "redis_url" {
  description = "The primary endpoint: rediss:// when TLS is on."
  value       = "${var.tls ? "rediss" : "redis"}://${local.primary.ip_address}:${local.primary.port}/0"
}
