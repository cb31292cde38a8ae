"""The Gradio app: map, chat, layers, exports. Imports only the analyst, geo (display) and export."""
