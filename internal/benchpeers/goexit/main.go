// Command goexit only exits: the floor of any Go process. See package
// benchpeers.
package main

func main() {}
