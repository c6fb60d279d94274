// The polar-event-buffer/mirror entry (being built: see issues 12 and 14).
export {};
