"""Tests of shiftwatch.demo: the story and the serve line it prints."""
