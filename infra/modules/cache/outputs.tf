output "instance" {
  description = "projects/P/locations/L/instances/I, for cache maintenance."
  value       = google_memorystore_instance.cache.id
}

output "redis_url" {
  value = "redis://${google_memorystore_instance.cache.endpoints[0].connections[0].psc_auto_connection[0].ip_address}:6379/0"
}
