"""An agent inbox: a web app for a support team on the hub, the store and the helpdesk."""
