using Snowflock.Engine.Internal;

namespace Snowflock.Tests.Unit;

/// <summary>SafeTree removes a tree by descriptor: links inside it, or swapped in for it, are
/// removed as links and what they point to stays.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Area", "unit")]
public sealed class SafeTreeTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("sftest-safetree-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A folder outside the tree, with files: what an attacker would like removed.</summary>
    private string Victim()
    {
        var victim = Directory.CreateDirectory(Path.Combine(_root, "victim")).FullName;
        for (var i = 0; i < 5; i++)
            File.WriteAllText(Path.Combine(victim, $"f{i}"), "keep");
        Directory.CreateDirectory(Path.Combine(victim, "sub"));
        File.WriteAllText(Path.Combine(victim, "sub", "g"), "keep");
        return victim;
    }

    private static void AssertIntact(string victim)
    {
        Assert.Equal(5, Directory.GetFiles(victim).Length);
        Assert.True(File.Exists(Path.Combine(victim, "sub", "g")));
    }

    [Fact]
    public void Removes_a_nested_tree_with_files_sockets_and_empty_folders()
    {
        var tree = Path.Combine(_root, "tree");
        Directory.CreateDirectory(Path.Combine(tree, "a", "b", "c"));
        Directory.CreateDirectory(Path.Combine(tree, "empty"));
        File.WriteAllText(Path.Combine(tree, "a", "b", "file"), "x");
        File.WriteAllText(Path.Combine(tree, "top"), "x");
        using (var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, 0))
            s.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(tree, "a", "x.sock")));
        Assert.True(SafeTree.Delete(tree));
        Assert.False(Directory.Exists(tree));
    }

    [Fact]
    public void A_missing_path_is_not_an_error()
    {
        Assert.False(SafeTree.Delete(Path.Combine(_root, "nothing")));
        Assert.False(SafeTree.Delete(Path.Combine(_root, "no", "parent")));
    }

    [Fact]
    public void Symlinks_inside_are_removed_as_links_never_followed()
    {
        var victim = Victim();
        var tree = Directory.CreateDirectory(Path.Combine(_root, "tree")).FullName;
        Directory.CreateDirectory(Path.Combine(tree, "d"));
        File.CreateSymbolicLink(Path.Combine(tree, "to-folder"), victim);
        File.CreateSymbolicLink(Path.Combine(tree, "d", "to-file"), Path.Combine(victim, "f0"));
        File.CreateSymbolicLink(Path.Combine(tree, "dangling"), Path.Combine(_root, "nowhere"));
        Assert.True(SafeTree.Delete(tree));
        Assert.False(Directory.Exists(tree));
        AssertIntact(victim);
    }

    [Fact]
    public void A_symlink_given_as_the_root_is_removed_and_its_target_kept()
    {
        var victim = Victim();
        var link = Path.Combine(_root, "link");
        File.CreateSymbolicLink(link, victim);
        Assert.True(SafeTree.Delete(link));
        Assert.False(File.Exists(link) || Directory.Exists(link));
        AssertIntact(victim);
    }

    [Fact]
    public void A_symlink_swapped_in_for_the_root_while_deleting_never_costs_the_target()
    {
        // The race Directory.Delete(recursive) loses: the path is a folder when looked at and a link
        // when walked. A thread swaps the two with renameat2(RENAME_EXCHANGE) for a bounded time.
        var victim = Victim();
        var swapper = new Thread(() => { });
        var stop = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        var name = Path.Combine(_root, "job");
        var other = Path.Combine(_root, "other");
        for (var round = 0; DateTime.UtcNow < stop; round++)
        {
            Directory.CreateDirectory(name);
            File.WriteAllText(Path.Combine(name, "x"), "x");
            if (!File.Exists(other) && !Directory.Exists(other))
                File.CreateSymbolicLink(other, victim);
            using var done = new ManualResetEventSlim();
            var t = new Thread(() =>
            {
                while (!done.IsSet)
                    Exchange(name, other);
            });
            t.Start();
            try
            {
                SafeTree.Delete(name);
            }
            catch (IOException)
            {
                // The swap can make one step fail (a folder gone mid-walk); it must never follow the link.
            }
            done.Set();
            t.Join();
            foreach (var p in new[] { name, other })
                if (new FileInfo(p).LinkTarget is not null)
                    File.Delete(p);
                else if (Directory.Exists(p))
                    Directory.Delete(p, recursive: true);
        }
        AssertIntact(victim);
    }

    [Fact]
    public void Only_if_ours_skips_an_entry_of_another_user()
    {
        var tree = Directory.CreateDirectory(Path.Combine(_root, "theirs")).FullName;
        File.WriteAllText(Path.Combine(tree, "f"), "x");
        Assert.Equal(0, Chown(tree, 65534, 65534));
        Assert.False(SafeTree.Delete(tree, onlyIfOurs: true));
        Assert.True(File.Exists(Path.Combine(tree, "f")));
        Assert.True(SafeTree.Delete(tree));
    }

    [Fact]
    public void MakePrivate_closes_folders_and_files_of_ours_but_follows_no_link()
    {
        var victim = Victim();
        File.SetUnixFileMode(Path.Combine(victim, "f0"), (UnixFileMode)0x1A4 /* 0644 */);
        var tree = Directory.CreateDirectory(Path.Combine(_root, "cache")).FullName;
        Directory.CreateDirectory(Path.Combine(tree, "sub"));
        File.WriteAllText(Path.Combine(tree, "sub", "f"), "x");
        File.SetUnixFileMode(Path.Combine(tree, "sub", "f"), (UnixFileMode)0x1ED /* 0755 */);
        File.SetUnixFileMode(tree, (UnixFileMode)0x1ED);
        File.SetUnixFileMode(Path.Combine(tree, "sub"), (UnixFileMode)0x1FF);
        File.CreateSymbolicLink(Path.Combine(tree, "link"), Path.Combine(victim, "f0"));
        Assert.Equal(3, SafeTree.MakePrivate(tree));
        Assert.Equal((UnixFileMode)0x1C0, File.GetUnixFileMode(tree));
        Assert.Equal((UnixFileMode)0x1C0, File.GetUnixFileMode(Path.Combine(tree, "sub")));
        Assert.Equal((UnixFileMode)0x1C0, File.GetUnixFileMode(Path.Combine(tree, "sub", "f")));
        Assert.Equal((UnixFileMode)0x1A4, File.GetUnixFileMode(Path.Combine(victim, "f0")));
    }

    [Fact]
    public void CreateUnique_makes_a_private_folder_and_refuses_an_open_parent()
    {
        var dir = PrivateDirectory.CreateUnique(_root, "job-");
        Assert.StartsWith(Path.Combine(_root, "job-"), dir);
        Assert.Equal((UnixFileMode)0x1C0, File.GetUnixFileMode(dir));
        var open = Directory.CreateDirectory(Path.Combine(_root, "open")).FullName;
        File.SetUnixFileMode(open, (UnixFileMode)0x1FF /* 0777, not sticky */);
        Assert.Throws<IOException>(() => PrivateDirectory.CreateUnique(open, "job-"));
    }

    [Fact]
    public void Ensure_refuses_a_folder_of_another_user_and_a_link()
    {
        var theirs = Directory.CreateDirectory(Path.Combine(_root, "theirs")).FullName;
        File.SetUnixFileMode(theirs, (UnixFileMode)0x1C0);
        Assert.Equal(0, Chown(theirs, 65534, 65534));
        Assert.Contains("belongs to another user", Assert.Throws<IOException>(() => PrivateDirectory.Ensure(theirs)).Message);
        var link = Path.Combine(_root, "link");
        File.CreateSymbolicLink(link, _root);
        Assert.Contains("not a directory", Assert.Throws<IOException>(() => PrivateDirectory.Ensure(link)).Message);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "chown", SetLastError = true)]
    private static extern int Chown(string path, int uid, int gid);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    private static extern int RenameAt2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    private static void Exchange(string a, string b) => RenameAt2(-100, a, -100, b, 2 /* RENAME_EXCHANGE */);
}
