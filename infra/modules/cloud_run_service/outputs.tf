output "name" {
  description = "The Cloud Run service's name (ngx-<function>)."
  value       = google_cloud_run_v2_service.this.name
}

output "uri" {
  description = "The service's URL."
  value       = google_cloud_run_v2_service.this.uri
}

output "service_account_email" {
  description = "The service's own service account."
  value       = google_service_account.this.email
}
