output "database" {
  description = "The Firestore database's name."
  value       = google_firestore_database.this.name
}
