output "name" {
  description = "The Cloud Scheduler job's name."
  value       = google_cloud_scheduler_job.this.name
}
